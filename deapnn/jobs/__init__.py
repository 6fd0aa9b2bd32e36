"""The jobs behind the ``deapnn`` command line, usable from Python too.

* :mod:`deapnn.jobs.hparams` -- evolve a hyperparameter space, then ``train_best``;
* :mod:`deapnn.jobs.weights` -- evolve all weights of a network (GA, OpenAI-ES, SNES);
* :mod:`deapnn.jobs.compare` -- both, on one split and one wall-clock budget per arm;
* :mod:`deapnn.jobs.report` -- redraw a run folder's tables and figures;
* :mod:`deapnn.jobs.common` -- budgets, ``--data`` specs, run folders.

Importing this package imports neither TensorFlow nor matplotlib.
"""

from deapnn.jobs.common import BadInput, RunFolder, load_data, parse_budget

__all__ = ["BadInput", "RunFolder", "load_data", "parse_budget"]
