"""Old import path of :mod:`deapnn.keras.evaluator` and :mod:`deapnn.keras.train`.

The evaluator and ``train_best`` now live in one module each; ``from deapnn.keras.training import
KerasEvaluator, train_best`` keeps working for existing scripts and notebooks. New code imports
from :mod:`deapnn.keras` (or :mod:`deapnn`).
"""

from deapnn.keras.evaluator import KerasEvaluator, TrainingRecord, genome_seed
from deapnn.keras.train import BestResult, train_best

__all__ = ["BestResult", "KerasEvaluator", "TrainingRecord", "genome_seed", "train_best"]
