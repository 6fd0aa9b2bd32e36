"""The Keras edge: search spaces and builders of networks, the evaluator that trains a genome's
network, and ``train_best``.

Importing this package does not import TensorFlow; the functions that build or train a model
import Keras when they are first called.
"""

from deapnn.keras.models import CNN_SPACE, MLP_SPACE, build_cnn, build_mlp, cnn_space, make_optimizer, mlp_space
from deapnn.keras.training import BestResult, KerasEvaluator, TrainingRecord, genome_seed, train_best

__all__ = [
    "CNN_SPACE",
    "MLP_SPACE",
    "BestResult",
    "KerasEvaluator",
    "TrainingRecord",
    "build_cnn",
    "build_mlp",
    "cnn_space",
    "genome_seed",
    "make_optimizer",
    "mlp_space",
    "train_best",
]
