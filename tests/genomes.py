"""Genomes shared by the Keras tests."""

from deapnn.keras import models
from deapnn.hparams.genome import make_genome


def mlp_genome(**changes):
    """A one-hidden-layer (32 units) genome of ``models.MLP_SPACE``, with ``changes`` applied."""
    values = {"optimizer": "adam", "learning_rate": 1e-3, "initializer": "glorot_uniform",
              "activation": "relu", "batch_size": 32, "use_bias": True, "batch_norm": False,
              "input_dropout": 0.0, "neurons0": 32, "dropout0": 0.0, "neurons1": 0,
              "dropout1": 0.0, "neurons2": 0, "dropout2": 0.0, "neurons3": 0, "dropout3": 0.0,
              "neurons4": 0, "dropout4": 0.0}
    values.update(changes)
    return make_genome(models.MLP_SPACE, values)
