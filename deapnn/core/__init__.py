"""Run machinery shared by both sides (hyperparameters and weights): creator fitness types,
failures as fitness values, seeding, statistics, the evaluation cache, the run loop with its
checkpoints, and plots."""

from deapnn.core import types  # noqa: F401  (creates the creator fitness types at import time)
from deapnn.core.cache import EvaluationCache
from deapnn.core.checkpoint import CheckpointError, load_checkpoint
from deapnn.core.fidelity import MultiFidelity
from deapnn.core.failures import Failure, SetupError, is_failure
from deapnn.core.loop import evolve
from deapnn.core.seeding import seed
from deapnn.core.stats import fitness_stats
from deapnn.core.store import EvaluationStore, StoreError

__all__ = [
    "CheckpointError",
    "EvaluationCache",
    "EvaluationStore",
    "Failure",
    "MultiFidelity",
    "SetupError",
    "StoreError",
    "evolve",
    "fitness_stats",
    "is_failure",
    "load_checkpoint",
    "seed",
]
