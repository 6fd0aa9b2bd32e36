"""deapnn: evolve Keras networks with DEAP.

Importing deapnn creates its DEAP ``creator`` types and never imports TensorFlow;
only the Keras edge modules do, when they are used.
"""

from deapnn import types  # noqa: F401  (creates the creator types at import time)
from deapnn import weights  # noqa: F401  (creates creator.WeightVector at import time)
from deapnn.cache import EvaluationCache
from deapnn.evolve import evolve
from deapnn.failures import Failure, is_failure
from deapnn.genome import GenomeBase, make_genome, random_genome
from deapnn.seeding import seed
from deapnn.space import Choice, FloatRange, IntRange, SearchSpace
from deapnn.stats import fitness_stats
from deapnn.toolbox import make_toolbox

__version__ = "0.1.0"

__all__ = [
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
    "seed",
]
