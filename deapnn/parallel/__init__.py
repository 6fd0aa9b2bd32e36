"""Parallel and distributed evaluation: serial, local processes, or SCOOP.

Going parallel is re-registering ``toolbox.map`` (DEAP's own recipe); this
package does it in one call, with the worker set-up Keras evaluation needs::

    from deapnn.parallel import register_backend

    toolbox = make_toolbox(space, evaluator)
    register_backend(toolbox)                     # SCOOP under `python -m scoop`, else serial
    register_backend(toolbox, "processes", workers=2, timeout=300)

Nothing here imports TensorFlow; workers import it lazily, inside the
evaluator, after their thread limits are set.

What goes wrong is sorted on every backend alike: an evaluator raising for one
individual gives a ``Failure`` fitness (``kind="genome"``); a time limit or a
worker that died (after ``retries``) gives an infrastructure ``Failure``
(evaluated again on resume); a setup error -- an evaluator that cannot be
pickled or unpickled in a worker, or a ``SetupError`` the evaluator raises (an
unknown metric) -- raises :class:`deapnn.core.failures.SetupError` at once with
the original message. The ``"processes"`` backend runs on ``pebble``'s
``ProcessPool`` (see :mod:`deapnn.parallel.pool` for why, with the numbers).

Many hosts with SCOOP: the same script, started with ``python -m scoop``::

    python -m scoop --hostfile hosts -n 16 my_run.py

where ``hosts`` lists one host per line with its worker count
(``node1 8``). SCOOP starts the other hosts' workers over ssh (password-less
keys), so every host needs: the same Python with deapnn, deap, scoop and
TensorFlow installed (or ``--python-interpreter``/``--pythonpath`` pointing at
them), the script at the same path (or ``--path``), and the data cache
(``~/.keras/datasets/mnist.npz`` or the file ``$DEAPNN_MNIST`` names). Datasets
are loaded once per worker from that cache; only genomes and fitnesses travel.
When the first host is a loopback name, add ``--tunnel`` (or
``--external-hostname`` with a routable address) so remote workers can reach
the broker. ``DEAPNN_WORKER_THREADS`` overrides the threads per worker
(default: cores // workers on the host).
"""

from deapnn.parallel.backends import (
    BACKENDS,
    BackendMap,
    EvaluationError,
    ProcessMap,
    ScoopMap,
    SerialMap,
    get_map,
    register_backend,
    resolve_backend,
    scoop_running,
    scoop_workers,
)
from deapnn.parallel.pool import WorkerPool
from deapnn.parallel.worker import TaskError, configure_threads, run_task, threads_per_worker

__all__ = [
    "BACKENDS",
    "BackendMap",
    "EvaluationError",
    "ProcessMap",
    "ScoopMap",
    "SerialMap",
    "TaskError",
    "WorkerPool",
    "configure_threads",
    "get_map",
    "register_backend",
    "resolve_backend",
    "run_task",
    "scoop_running",
    "scoop_workers",
    "threads_per_worker",
]
