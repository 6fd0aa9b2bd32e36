"""deapnn: evolve Keras networks with DEAP.

The subpackages show the design:

* :mod:`deapnn.core` -- what both sides share: fitness types, failures, seeding, statistics,
  the evaluation cache, the run loop and its checkpoints, plots;
* :mod:`deapnn.hparams` -- hyperparameter genomes: search spaces, operators, toolbox, baselines,
  Evo-NAS;
* :mod:`deapnn.weights` -- flat weight-vector neuroevolution;
* :mod:`deapnn.keras` -- the Keras edge: network builders, the evaluator, ``train_best``;
* :mod:`deapnn.data` -- datasets and their loaders;
* :mod:`deapnn.parallel` -- serial, process and SCOOP backends for ``toolbox.map``.

Importing deapnn creates its DEAP ``creator`` types and never imports TensorFlow;
only the Keras edge functions do, when they are called.
"""

from deapnn import core, data, hparams, keras, parallel, weights  # noqa: F401  (creator types at import)
from deapnn.core.cache import EvaluationCache
from deapnn.core.checkpoint import CheckpointError, load_checkpoint
from deapnn.core.fidelity import MultiFidelity
from deapnn.core.failures import Failure, SetupError, is_failure
from deapnn.core.loop import evolve
from deapnn.core.store import EvaluationStore
from deapnn.core.seeding import seed
from deapnn.core.stats import fitness_stats
from deapnn.data import Dataset, from_arrays, load_digits, load_mnist
from deapnn.hparams.baselines import brute_force, random_search
from deapnn.hparams.genome import GenomeBase, make_genome, random_genome
from deapnn.hparams.learned import LearnedMutation, mut_learned
from deapnn.hparams.screened import ScreenedMutation, mut_screened
from deapnn.hparams.space import Choice, FloatRange, IntRange, SearchSpace
from deapnn.hparams.toolbox import make_toolbox
from deapnn.keras.models import CNN_SPACE, MLP_SPACE, build_cnn, build_mlp, cnn_space, mlp_space
from deapnn.keras import KerasEvaluator, train_best
from deapnn.parallel import get_map, register_backend

__version__ = "0.1.0"

__all__ = [
    "CNN_SPACE",
    "Dataset",
    "KerasEvaluator",
    "MLP_SPACE",
    "brute_force",
    "build_cnn",
    "build_mlp",
    "cnn_space",
    "from_arrays",
    "load_digits",
    "load_mnist",
    "mlp_space",
    "mut_learned",
    "mut_screened",
    "random_search",
    "train_best",
    "Choice",
    "CheckpointError",
    "EvaluationCache",
    "EvaluationStore",
    "SetupError",
    "load_checkpoint",
    "Failure",
    "FloatRange",
    "MultiFidelity",
    "GenomeBase",
    "LearnedMutation",
    "ScreenedMutation",
    "IntRange",
    "SearchSpace",
    "evolve",
    "fitness_stats",
    "is_failure",
    "make_genome",
    "make_toolbox",
    "random_genome",
    "register_backend",
    "get_map",
    "seed",
]
