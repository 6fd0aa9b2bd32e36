"""The Keras edge: search spaces and builders of networks (:mod:`~deapnn.keras.models`), the
evaluator that trains a genome's network (:mod:`~deapnn.keras.evaluator`), and ``train_best``
(:mod:`~deapnn.keras.train`).

Importing this package does not import TensorFlow; the functions that build or train a model
import Keras when they are first called.
"""

from deapnn.keras.models import CNN_SPACE, MLP_SPACE, build_cnn, build_mlp, cnn_space, make_optimizer, mlp_space
from deapnn.keras.evaluator import KerasEvaluator, TrainingRecord, check_builder, genome_seed
from deapnn.keras.train import BestResult, train_best

__all__ = [
    "CNN_SPACE",
    "MLP_SPACE",
    "BestResult",
    "KerasEvaluator",
    "TrainingRecord",
    "build_cnn",
    "build_mlp",
    "check_builder",
    "cnn_space",
    "genome_seed",
    "make_optimizer",
    "mlp_space",
    "train_best",
]
