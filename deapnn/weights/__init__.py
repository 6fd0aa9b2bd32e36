"""Flat weight-vector neuroevolution of Keras models.

All weights of a model become one float32 vector (:mod:`~deapnn.weights.codec`), individuals are
``creator.WeightVector`` numpy arrays (:mod:`~deapnn.weights.types`), varied by vectorised DEAP-style
operators (:mod:`~deapnn.weights.operators`, :func:`make_weight_toolbox`), evaluated a population at
a time or evolved by evolution strategies (:mod:`~deapnn.weights.strategies`). Importing this
package does not import TensorFlow.

One module, one job:

* :mod:`~deapnn.weights.spec` -- :class:`NetworkSpec` and the layer specs (plain data);
* :mod:`~deapnn.weights.graph` -- the batched TensorFlow computation of a spec (lazy import);
* :mod:`~deapnn.weights.buffers` -- aligned weight blocks TensorFlow reads without a copy;
* :mod:`~deapnn.weights.evaluator` -- :class:`BatchedEvaluator`, the population evaluator that
  the parallel backends' maps (:mod:`deapnn.parallel`) advance and chunk;
* :mod:`~deapnn.weights.codec`, :mod:`~deapnn.weights.types`, :mod:`~deapnn.weights.operators`,
  :mod:`~deapnn.weights.toolbox`, :mod:`~deapnn.weights.strategies` (OpenAI-ES, SNES),
  :mod:`~deapnn.weights.pgpe` (PGPE with ClipUp), :mod:`~deapnn.weights.cma` (sep-CMA-ES, DEAP's
  ``cma.Strategy`` for small networks);
* :mod:`~deapnn.weights.minibatch` -- honest fitness on resampled minibatches (survivors
  re-scored before selection, a hall of fame ranked on validation data).
"""

from deapnn.weights.codec import WeightCodec, WeightLayout
from deapnn.weights.evaluator import BatchedEvaluator, evaluate_chunk
from deapnn.weights.spec import (
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    FlattenSpec,
    NetworkSpec,
    PoolSpec,
    ReshapeSpec,
    UnsupportedModel,
)
from deapnn.weights.operators import (
    cx_average,
    cx_blend,
    cx_heuristic,
    cx_two_point,
    cx_uniform,
    mut_gaussian,
    sel_elitist_tournament,
)
from deapnn.weights.strategies import SNES, OpenAIES, centered_ranks
from deapnn.weights.pgpe import PGPE, ClipUp
from deapnn.weights.cma import SepCMAES, cma_strategy
from deapnn.weights.minibatch import HonestMap, ValidationHallOfFame, rescore, sel_rescored
from deapnn.weights.toolbox import STRATEGIES, init_normal, init_uniform, make_weight_toolbox
from deapnn.weights.graph import row_layout
from deapnn.weights.buffers import padded_matrix, population_matrix, prefer_row_length, row_length
from deapnn.weights.types import WeightArray, WeightVector, as_matrix, hall_of_fame, rows_as_individuals

__all__ = [
    "BatchNormSpec",
    "BatchedEvaluator",
    "Conv2DSpec",
    "DenseSpec",
    "FlattenSpec",
    "NetworkSpec",
    "PoolSpec",
    "ReshapeSpec",
    "UnsupportedModel",
    "evaluate_chunk",
    "WeightCodec",
    "WeightLayout",
    "cx_average",
    "cx_blend",
    "cx_heuristic",
    "cx_two_point",
    "cx_uniform",
    "mut_gaussian",
    "sel_elitist_tournament",
    "SNES",
    "OpenAIES",
    "centered_ranks",
    "PGPE",
    "ClipUp",
    "SepCMAES",
    "cma_strategy",
    "HonestMap",
    "ValidationHallOfFame",
    "rescore",
    "sel_rescored",
    "STRATEGIES",
    "rows_as_individuals",
    "population_matrix",
    "padded_matrix",
    "prefer_row_length",
    "row_length",
    "row_layout",
    "init_normal",
    "init_uniform",
    "make_weight_toolbox",
    "WeightArray",
    "WeightVector",
    "as_matrix",
    "hall_of_fame",
]
