"""deapnn: evolve Keras networks with DEAP.

Importing deapnn creates its DEAP ``creator`` types and never imports TensorFlow;
only the Keras edge modules do, when they are used.
"""

from deapnn import types  # noqa: F401  (creates the creator types at import time)
from deapnn import weights  # noqa: F401  (creates creator.WeightVector at import time)
from deapnn.baselines import brute_force, random_search
from deapnn.cache import EvaluationCache
from deapnn.data import Dataset, from_arrays, load_digits, load_mnist
from deapnn.evolve import evolve
from deapnn.failures import Failure, is_failure
from deapnn.genome import GenomeBase, make_genome, random_genome
from deapnn.models import CNN_SPACE, MLP_SPACE, build_cnn, build_mlp, cnn_space, mlp_space
from deapnn.parallel import get_map, register_backend
from deapnn.seeding import seed
from deapnn.space import Choice, FloatRange, IntRange, SearchSpace
from deapnn.stats import fitness_stats
from deapnn.toolbox import make_toolbox
from deapnn.training import KerasEvaluator, train_best

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
    "random_search",
    "train_best",
    "Choice",
    "EvaluationCache",
    "Failure",
    "FloatRange",
    "GenomeBase",
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
