"""Population-batched evaluation of weight vectors (the TensorFlow edge of deapnn.weights).

:class:`BatchedEvaluator` computes the forward pass of a whole population in one TensorFlow graph:
a Dense layer on a shared input is one broadcast batched matmul ``(1, B, I) @ (P, I, U)``, later
Dense layers are batched matmuls ``(P, B, I) @ (P, I, U)``, a first Conv2D is one convolution with
``P * F`` filters and later convolutions are grouped convolutions (``P`` groups). Models the graph
does not cover fall back to one Keras forward pass per individual (``set_weights`` + call). The
fitness is the negative mean cross-entropy or the accuracy on a minibatch drawn from the training
data; a non-finite output gives a :class:`deapnn.core.failures.Failure` fitness.

Per call, the individuals are copied once, with numpy, into reusable 64-byte-aligned blocks, one
per graph input (a layer's kernel, its bias, or a first Dense layer's kernel and bias together),
which TensorFlow then reads in place through DLPack; the minibatch is converted to TensorFlow once
per step. The head computes the softmax cross-entropy from logits laid out ``(P, K, B)``, its
elementwise work fused into one XLA kernel where XLA is available. When the first weight layer is
Dense, input features that are zero in every sample of the minibatch are left out of it
(``skip_zero_inputs``): exact, and on MNIST about 29% less work in the dominant layer.

:class:`BatchedMap` is a DEAP ``map``: given the evaluator as the function, it evaluates all the
individuals it receives together, so ``algorithms.eaSimple`` and ``algorithms.eaGenerateUpdate``
run unchanged. Both classes pickle; TensorFlow is imported and the graph built lazily, once per
process, on first use.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy

from deapnn.core.failures import Failure
from deapnn.weights.codec import WeightLayout
from deapnn.weights.types import as_matrix, vector_rows

__all__ = [
    "DenseSpec",
    "Conv2DSpec",
    "PoolSpec",
    "FlattenSpec",
    "ReshapeSpec",
    "NetworkSpec",
    "BatchedEvaluator",
    "BatchedMap",
    "evaluate_chunk",
    "FITNESSES",
]

FITNESSES = ("neg_cross_entropy", "accuracy")
_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax", "elu", "selu", "gelu", "swish")


def _check_activation(name: str) -> str:
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {name!r}")
    return name


# --------------------------------------------------------------------------------------------
# Network description (plain, picklable; no TensorFlow)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DenseSpec:
    """A Dense layer: ``units``, ``activation`` name, ``use_bias``."""

    units: int
    activation: str = "linear"
    use_bias: bool = True

    def __post_init__(self) -> None:
        if self.units < 1:
            raise ValueError(f"DenseSpec: units must be >= 1, got {self.units!r}")
        _check_activation(self.activation)


@dataclass(frozen=True)
class Conv2DSpec:
    """A channels-last Conv2D layer (no dilation, no groups)."""

    filters: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: str = "valid"
    activation: str = "linear"
    use_bias: bool = True

    def __post_init__(self) -> None:
        if self.filters < 1:
            raise ValueError(f"Conv2DSpec: filters must be >= 1, got {self.filters!r}")
        if self.padding not in ("valid", "same"):
            raise ValueError(f"Conv2DSpec: padding must be 'valid' or 'same', got {self.padding!r}")
        _check_activation(self.activation)


@dataclass(frozen=True)
class PoolSpec:
    """Max or average 2-D pooling (channels last)."""

    kind: str
    pool_size: tuple[int, int] = (2, 2)
    strides: tuple[int, int] | None = None
    padding: str = "valid"

    def __post_init__(self) -> None:
        if self.kind not in ("max", "avg"):
            raise ValueError(f"PoolSpec: kind must be 'max' or 'avg', got {self.kind!r}")
        if self.strides is None:  # Keras' default: strides = pool_size
            object.__setattr__(self, "strides", tuple(self.pool_size))
        if self.padding not in ("valid", "same"):
            raise ValueError(f"PoolSpec: padding must be 'valid' or 'same', got {self.padding!r}")


@dataclass(frozen=True)
class FlattenSpec:
    """Flatten all but the batch axis (row-major, as Keras does)."""


@dataclass(frozen=True)
class ReshapeSpec:
    """Reshape each sample to ``target_shape``."""

    target_shape: tuple[int, ...]


LayerSpec = DenseSpec | Conv2DSpec | PoolSpec | FlattenSpec | ReshapeSpec


class UnsupportedModel(ValueError):
    """The batched graph does not cover this model (the evaluator then falls back)."""


@dataclass(frozen=True)
class NetworkSpec:
    """A feed-forward stack the batched graph can evaluate.

    Args:
        input_shape: Shape of one sample, e.g. ``(28, 28)``.
        layers: Layer specs in order.
    """

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    _shapes: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_shapes", self._infer())

    @classmethod
    def mlp(
        cls,
        input_shape: Sequence[int],
        hidden: Sequence[int],
        n_classes: int,
        activation: str = "relu",
    ) -> "NetworkSpec":
        """Flatten, ``Dense(h, activation)`` for each ``h`` in ``hidden``, ``Dense(n_classes,
        "softmax")`` — seed 004's 784-128-10 is ``NetworkSpec.mlp((28, 28), [128], 10)``."""
        layers: list[LayerSpec] = [FlattenSpec()]
        layers += [DenseSpec(int(h), activation) for h in hidden]
        layers.append(DenseSpec(int(n_classes), "softmax"))
        return cls(tuple(int(d) for d in input_shape), tuple(layers))

    @classmethod
    def from_model(cls, model: Any) -> "NetworkSpec":
        """Describe a ``keras.Sequential`` model made of supported layers.

        Supported: InputLayer, Flatten, Reshape, Dense, Conv2D (channels last, no dilation,
        no groups), MaxPooling2D, AveragePooling2D, Dropout (identity at inference),
        Activation.

        Raises:
            UnsupportedModel: For anything else (use the per-individual fallback).
        """
        if type(model).__name__ != "Sequential":
            raise UnsupportedModel(f"only Sequential models are batched, got {type(model).__name__}")
        layers: list[LayerSpec] = []
        for layer in model.layers:
            kind = type(layer).__name__
            cfg = layer.get_config()
            act = getattr(getattr(layer, "activation", None), "__name__", "linear")
            if kind in ("InputLayer", "Dropout", "GaussianDropout", "SpatialDropout2D"):
                continue
            if kind == "Flatten":
                layers.append(FlattenSpec())
            elif kind == "Reshape":
                layers.append(ReshapeSpec(tuple(int(d) for d in cfg["target_shape"])))
            elif kind == "Dense":
                _supported_activation(act, layer)
                layers.append(DenseSpec(int(cfg["units"]), act, bool(cfg["use_bias"])))
            elif kind == "Conv2D":
                _supported_activation(act, layer)
                if tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1) or cfg.get("groups", 1) != 1:
                    raise UnsupportedModel(f"layer {layer.name!r}: dilation/groups not batched")
                if cfg.get("data_format", "channels_last") != "channels_last":
                    raise UnsupportedModel(f"layer {layer.name!r}: channels_first not batched")
                layers.append(
                    Conv2DSpec(
                        int(cfg["filters"]),
                        tuple(cfg["kernel_size"]),
                        tuple(cfg["strides"]),
                        cfg["padding"],
                        act,
                        bool(cfg["use_bias"]),
                    )
                )
            elif kind in ("MaxPooling2D", "AveragePooling2D"):
                if cfg.get("data_format", "channels_last") != "channels_last":
                    raise UnsupportedModel(f"layer {layer.name!r}: channels_first not batched")
                strides = cfg.get("strides")
                layers.append(
                    PoolSpec(
                        "max" if kind.startswith("Max") else "avg",
                        tuple(cfg["pool_size"]),
                        tuple(strides) if strides is not None else None,
                        cfg["padding"],
                    )
                )
            elif kind == "Activation":
                _supported_activation(act, layer)
                if not layers or not isinstance(layers[-1], (DenseSpec, Conv2DSpec)):
                    raise UnsupportedModel(f"layer {layer.name!r}: Activation must follow a weight layer")
                if layers[-1].activation != "linear":
                    raise UnsupportedModel(f"layer {layer.name!r}: stacked activations not batched")
                layers[-1] = type(layers[-1])(**{**layers[-1].__dict__, "activation": act})
            else:
                raise UnsupportedModel(f"layer {layer.name!r} of type {kind} is not batched")
        input_shape = tuple(int(d) for d in model.input_shape[1:])
        try:
            return cls(input_shape, tuple(layers))
        except ValueError as err:
            raise UnsupportedModel(str(err)) from err

    def _infer(self) -> tuple:
        """Per-layer (input shape, packed?) and the weight shapes; validates the stack."""
        shape = tuple(self.input_shape)
        per_individual = stacked = False
        out = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, FlattenSpec):
                shape = (math.prod(shape),)
            elif isinstance(layer, ReshapeSpec):
                if math.prod(layer.target_shape) != math.prod(shape):
                    raise ValueError(f"layer {i}: cannot reshape {shape} to {layer.target_shape}")
                if per_individual and len(shape) == 3:
                    raise UnsupportedModel(f"layer {i}: reshape after a convolution is not batched")
                shape = tuple(layer.target_shape)
            elif isinstance(layer, DenseSpec):
                if len(shape) != 1:
                    raise UnsupportedModel(f"layer {i}: Dense on a {len(shape)}-D input; flatten first")
                shape = (layer.units,)
                per_individual = stacked = True
            elif isinstance(layer, Conv2DSpec):
                if stacked:
                    raise UnsupportedModel(f"layer {i}: Conv2D after a Dense layer is not batched")
                if len(shape) != 3:
                    raise UnsupportedModel(f"layer {i}: Conv2D needs (H, W, C) input, got {shape}")
                if layer.activation == "softmax":
                    raise UnsupportedModel(f"layer {i}: softmax convolution is not batched")
                h, w = _conv_out(shape[:2], layer.kernel_size, layer.strides, layer.padding)
                shape = (h, w, layer.filters)
                per_individual = True
            elif isinstance(layer, PoolSpec):
                if stacked:
                    raise UnsupportedModel(f"layer {i}: pooling after a Dense layer is not batched")
                if len(shape) != 3:
                    raise UnsupportedModel(f"layer {i}: pooling needs (H, W, C) input, got {shape}")
                strides = layer.strides or layer.pool_size
                h, w = _conv_out(shape[:2], layer.pool_size, strides, layer.padding)
                shape = (h, w, shape[2])
            out.append(shape)
        if not self.layers or not isinstance(self.layers[-1], DenseSpec):
            raise UnsupportedModel("the last layer must be Dense")
        return tuple(out)

    @property
    def n_outputs(self) -> int:
        """Width of the output layer (number of classes)."""
        return self.layers[-1].units

    def weight_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the variables in Keras order (kernel then bias per layer)."""
        shapes: list[tuple[int, ...]] = []
        prev = tuple(self.input_shape)
        for layer, out_shape in zip(self.layers, self._shapes):
            if isinstance(layer, DenseSpec):
                shapes.append((prev[0], layer.units))
                if layer.use_bias:
                    shapes.append((layer.units,))
            elif isinstance(layer, Conv2DSpec):
                shapes.append((*layer.kernel_size, prev[2], layer.filters))
                if layer.use_bias:
                    shapes.append((layer.filters,))
            prev = out_shape
        return shapes

    def layout(self) -> WeightLayout:
        """The :class:`WeightLayout` of this network (same order as the Keras model's)."""
        names = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, (DenseSpec, Conv2DSpec)):
                names.append(f"{type(layer).__name__[:-4].lower()}_{i}/kernel")
                if layer.use_bias:
                    names.append(f"{type(layer).__name__[:-4].lower()}_{i}/bias")
        return WeightLayout.from_shapes(self.weight_shapes(), names=names)

    def build_keras(self) -> Any:
        """An equivalent ``keras.Sequential`` model (imports Keras)."""
        import keras

        layers: list[Any] = [keras.Input(self.input_shape)]
        for layer in self.layers:
            if isinstance(layer, FlattenSpec):
                layers.append(keras.layers.Flatten())
            elif isinstance(layer, ReshapeSpec):
                layers.append(keras.layers.Reshape(layer.target_shape))
            elif isinstance(layer, DenseSpec):
                layers.append(keras.layers.Dense(layer.units, layer.activation, layer.use_bias))
            elif isinstance(layer, Conv2DSpec):
                layers.append(
                    keras.layers.Conv2D(
                        layer.filters, layer.kernel_size, layer.strides, layer.padding,
                        activation=layer.activation, use_bias=layer.use_bias,
                    )
                )
            else:
                cls = keras.layers.MaxPooling2D if layer.kind == "max" else keras.layers.AveragePooling2D
                layers.append(cls(layer.pool_size, layer.strides, layer.padding))
        return keras.Sequential(layers)


def _supported_activation(name: str, layer: Any) -> None:
    if name not in _ACTIVATIONS:
        raise UnsupportedModel(f"layer {layer.name!r}: activation {name!r} is not batched")


def _conv_out(hw: Sequence[int], kernel: Sequence[int], strides: Sequence[int], padding: str):
    if padding == "same":
        return tuple(-(-n // s) for n, s in zip(hw, strides))
    out = tuple((n - k) // s + 1 for n, k, s in zip(hw, kernel, strides))
    if min(out) < 1:
        raise ValueError(f"window {tuple(kernel)} does not fit input {tuple(hw)}")
    return out


# --------------------------------------------------------------------------------------------
# The TensorFlow graph (built lazily)
# --------------------------------------------------------------------------------------------
def _activate(tf: Any, h: Any, name: str) -> Any:
    if name == "linear":
        return h
    if name == "softmax":
        return tf.nn.softmax(h, axis=-1)
    if name == "swish":
        return tf.nn.silu(h)
    if name == "gelu":
        return tf.nn.gelu(h, approximate=False)
    return getattr(tf.nn, name)(h)


def _weight_plan(spec: NetworkSpec) -> tuple[list[tuple], list[tuple[int, int, tuple[int, ...]]]]:
    """Which span of the flat weight vector each layer reads, as a graph input of its own.

    Returns ``(plan, spans)``: ``plan`` holds ``(layer, output shape, span indices, merged)`` per
    layer and ``spans`` holds ``(start, stop, shape)`` per graph input, in the flat vector's order.
    A variable is one span, except that a first weight layer that is Dense with a bias (on the
    shared input) reads its kernel and bias as one ``(I + 1, U)`` span (they are adjacent in
    Keras' order): it multiplies the input with a column of ones appended, so the bias comes out
    of the matmul instead of a broadcast add over ``(P, B, U)``.
    """
    layout = spec.layout()
    variables = iter(zip(layout.offsets, layout.sizes, layout.shapes))
    plan: list[tuple] = []
    spans: list[tuple[int, int, tuple[int, ...]]] = []
    first = True
    for layer, out_shape in zip(spec.layers, spec._shapes):
        indices: list[int] = []
        merged = False
        if isinstance(layer, (DenseSpec, Conv2DSpec)):
            off, size, shape = next(variables)
            if layer.use_bias:
                b_off, b_size, _ = next(variables)
                if first and isinstance(layer, DenseSpec):
                    merged = True
                    spans.append((off, b_off + b_size, (shape[0] + 1, shape[1])))
                else:
                    spans.append((off, off + size, shape))
                    spans.append((b_off, b_off + b_size, (b_size,)))
                indices = [len(spans) - 2, len(spans) - 1] if not merged else [len(spans) - 1]
            else:
                spans.append((off, off + size, shape))
                indices = [len(spans) - 1]
            first = False
        plan.append((layer, out_shape, indices, merged))
    return plan, spans


def _first_dense(plan: Sequence[tuple]) -> tuple | None:
    """The entry of a :func:`_weight_plan` plan for the first weight layer when it is Dense (on
    the shared input), else None."""
    first = next(entry for entry in plan if isinstance(entry[0], (DenseSpec, Conv2DSpec)))
    return first if isinstance(first[0], DenseSpec) else None


def _build_forward(spec: NetworkSpec, pruned: bool = False) -> Callable:
    """Python function ``(params, x (B, ...)) -> logits (P, B, K)`` for tf.function.

    With ``classes_first=True`` the logits come out as ``(P, K, B)``.

    With ``pruned`` (only when the first weight layer is Dense, see :func:`_first_dense`), ``x``
    is the flat input already reduced to the columns ``keep`` (the kept input features, then a
    column of ones for a merged bias) and the first layer multiplies it with the matching rows
    of its kernel span, ``tf.gather(kernel, keep, axis=1)``; layers before it are skipped.

    ``params`` holds one tensor per span of :func:`_weight_plan`, shaped ``(P, *span_shape)``
    (the population's blocks, see :meth:`BatchedEvaluator._blocks`), so no layer slices its
    weights out of a ``(P, n)`` matrix (a copy) inside the graph.

    Representations: ``shared`` (B, ...) until the first weight layer; ``packed``
    (B, H, W, P*C) after a convolution (the population lives in the channel axis, so pooling and
    grouped convolution apply unchanged); ``stacked`` (P, B, U) after a Dense layer.
    """
    import tensorflow as tf

    plan, spans = _weight_plan(spec)
    last = len(plan) - 1

    def forward(weights: Sequence[Any], x: Any, classes_first: bool = False,
                keep: Any = None) -> Any:
        pop = tf.shape(weights[0])[0]
        batch = tf.shape(x)[0]
        h = x
        mode = "shared"
        prev_shape = tuple(spec.input_shape)
        for i, (layer, out_shape, params, merged) in enumerate(plan):
            if pruned and mode == "shared" and not isinstance(layer, DenseSpec):
                pass  # x is already flat and pruned
            elif isinstance(layer, FlattenSpec):
                if mode == "shared":
                    h = tf.reshape(h, (batch, -1))
                elif mode == "packed":
                    hh, ww, cc = prev_shape
                    h = tf.reshape(h, (batch, hh, ww, pop, cc))
                    h = tf.transpose(h, (3, 0, 1, 2, 4))
                    h = tf.reshape(h, (pop, batch, hh * ww * cc))
                    mode = "stacked"
                else:
                    h = tf.reshape(h, (pop, batch, -1))
            elif isinstance(layer, ReshapeSpec):
                if mode == "shared":
                    h = tf.reshape(h, (batch, *layer.target_shape))
                else:
                    h = tf.reshape(h, (pop, batch, *layer.target_shape))
            elif isinstance(layer, PoolSpec):
                strides = layer.strides or layer.pool_size
                pool = tf.nn.max_pool2d if layer.kind == "max" else tf.nn.avg_pool2d
                h = pool(h, layer.pool_size, strides, layer.padding.upper())
            elif isinstance(layer, DenseSpec):
                kernel = weights[params[0]]
                if pruned and mode == "shared":  # x holds the kept columns (and the ones)
                    kernel = tf.gather(kernel, keep, axis=1)
                elif merged:  # (P, I + 1, U): kernel rows, then the bias row
                    h = tf.concat([h, tf.ones((batch, 1), h.dtype)], axis=1)
                if i == last and classes_first:
                    # (P, K, B) = kernel^T @ h^T: the head then reduces over a middle axis of K,
                    # which TensorFlow's CPU kernels do far faster than over a short last axis
                    h = tf.matmul(kernel, h[None] if mode == "shared" else h,
                                  transpose_a=True, transpose_b=True)
                    if layer.use_bias and not merged:
                        h = h + weights[params[1]][:, :, None]
                else:
                    h = tf.matmul(h[None] if mode == "shared" else h, kernel)
                    if layer.use_bias and not merged:
                        h = h + weights[params[1]][:, None, :]
                mode = "stacked"
                if not (i == last and layer.activation == "softmax"):
                    h = _activate(tf, h, layer.activation)
            elif isinstance(layer, Conv2DSpec):
                kh, kw, cin, cout = spans[params[0]][2]
                kernel = weights[params[0]]  # (P, kh, kw, cin, cout)
                kernel = tf.reshape(tf.transpose(kernel, (1, 2, 3, 0, 4)), (kh, kw, cin, -1))
                h = tf.nn.conv2d(h, kernel, layer.strides, layer.padding.upper())
                if layer.use_bias:
                    h = h + tf.reshape(weights[params[1]], (-1,))
                mode = "packed"
                h = _activate(tf, h, layer.activation)
            prev_shape = out_shape
        return h

    return forward


class _Graph:
    """Compiled tf.functions for one spec (one per process).

    Both take the population as a tuple of tensors, one per span of :func:`_weight_plan`, each
    shaped ``(P, *span_shape)`` (see :meth:`BatchedEvaluator._blocks`); the signatures leave ``P``
    and the number of samples free, so each function is traced once.
    """

    def __init__(self, spec: NetworkSpec, prune: bool = False):
        import tensorflow as tf

        plan, self.spans = _weight_plan(spec)
        first = _first_dense(plan)
        #: whether :meth:`fitness` takes pruned inputs (``keep``); see :meth:`prepare`
        self.pruned = bool(prune) and first is not None
        self.merged = first is not None and first[3]
        # the index of a merged first span's bias row: (I + 1, U) -> I
        self._bias_row = self.spans[first[2][0]][2][0] - 1 if self.merged else None
        forward = _build_forward(spec)
        fitness_forward = _build_forward(spec, pruned=True) if self.pruned else forward
        self.softmax_output = spec.layers[-1].activation == "softmax"
        w_spec = tuple(tf.TensorSpec([None, *shape], tf.float32) for _, _, shape in self.spans)
        x_spec = tf.TensorSpec([None, *spec.input_shape], tf.float32)
        y_spec = tf.TensorSpec([None], tf.int32)
        keep_spec = tf.TensorSpec([None], tf.int32)
        n_classes = spec.n_outputs

        def head(logits, y):
            """Cross-entropy, accuracy and finiteness of ``(P, K, B)`` logits (elementwise work)."""
            finite = tf.reduce_all(tf.math.is_finite(logits), axis=[1, 2])
            # softmax cross-entropy, log(sum(exp(l - max))) - (l_y - max), as
            # tf.nn.sparse_softmax_cross_entropy_with_logits computes it (that op is ~2x slower
            # here: its labels differ per individual and it reduces over the last axis)
            top = tf.reduce_max(logits, axis=1)  # (P, B)
            log_sum = tf.math.log(tf.reduce_sum(tf.exp(logits - top[:, None, :]), axis=1))
            one_hot = tf.one_hot(y, n_classes, axis=0, dtype=logits.dtype)  # (K, B)
            true = tf.reduce_sum(logits * one_hot[None], axis=1)
            ce = log_sum - (true - top)
            predicted = tf.argmax(logits, axis=1, output_type=tf.int32)
            correct = tf.cast(tf.equal(predicted, y[None, :]), tf.float32)
            return tf.reduce_mean(ce, axis=1), tf.reduce_mean(correct, axis=1), finite

        def make_fitness(head):
            if not self.pruned:
                @tf.function(input_signature=[w_spec, x_spec, y_spec])
                def fitness(weights, x, y):
                    # a softmax head's pre-activations; other heads' outputs are read as logits
                    return head(forward(weights, x, classes_first=True), y)  # logits (P, K, B)

                return fitness

            @tf.function(input_signature=[w_spec, tf.TensorSpec([None, None], tf.float32),
                                          y_spec, keep_spec])
            def pruned_fitness(weights, x, y, keep):
                ce, acc, finite = head(fitness_forward(weights, x, True, keep), y)
                # a non-finite weight on a dropped input would make Keras' output NaN (0 * inf)
                first_kernel = weights[first[2][0]]
                return ce, acc, finite & tf.reduce_all(tf.math.is_finite(first_kernel), axis=[1, 2])

            return pruned_fitness

        # The head is a dozen elementwise ops over (P, K, B); run one by one they cost as much
        # as the last matmul. XLA fuses them into one loop (the matmuls stay on TensorFlow's
        # oneDNN kernels, which are faster on CPU than XLA's). Where XLA is unavailable or
        # fails, the first call falls back to the plain graph (see :meth:`fitness`).
        self._fitness_fused = make_fitness(tf.function(head, jit_compile=True))
        self._fitness_plain = make_fitness(head)
        self._fused: bool | None = None
        self._errors = (tf.errors.OpError, NotImplementedError)

        @tf.function(input_signature=[w_spec, x_spec])
        def predict(weights, x):
            out = forward(weights, x)
            return tf.nn.softmax(out, axis=-1) if self.softmax_output else out

        self.predict = predict
        self.tensor = _zero_copy_converter(tf)
        self.constant = tf.constant

    def fitness(self, weights: tuple, x: Any, y: Any, keep: Any = None) -> tuple[Any, Any, Any]:
        """``(cross-entropy (P,), accuracy (P,), finite (P,))`` of the population on ``(x, y)``.

        When :attr:`pruned`, ``x`` and ``keep`` come from :meth:`prepare`.
        """
        args = (weights, x, y, keep) if self.pruned else (weights, x, y)
        if self._fused is None:
            try:
                out = self._fitness_fused(*args)
                self._fused = True
                return out
            except self._errors:
                self._fused = False
        return (self._fitness_fused if self._fused else self._fitness_plain)(*args)

    def prepare(self, x: numpy.ndarray, y: numpy.ndarray,
                chunk: int = 2048) -> tuple[list[tuple[Any, Any, int]], Any]:
        """Samples as TensorFlow inputs of :meth:`fitness`: ``([(x, y, count) per chunk], keep)``.

        When :attr:`pruned`, input features that are zero in every sample are dropped (``keep``
        lists the others, then the bias row of a merged first span): their products with the
        kernel are exact zeros, so the scores are unchanged up to float summation order while
        the first layer does less work. MNIST minibatches of 256 images leave out about 29% of
        the pixels. ``keep`` is None otherwise.
        """
        n = x.shape[0]
        keep = None
        if self.pruned:
            x = x.reshape(n, -1)
            columns = numpy.flatnonzero(numpy.any(x != 0, axis=0))
            if columns.size == 0:
                columns = numpy.zeros(1, numpy.int64)  # an all-zero input still needs a column
            x = x[:, columns]
            if self.merged:
                x = numpy.concatenate([x, numpy.ones((n, 1), numpy.float32)], axis=1)
                columns = numpy.append(columns, self._bias_row)
            keep = self.constant(columns.astype(numpy.int32))
        chunks = [(self.constant(x[s : s + chunk]), self.constant(y[s : s + chunk]),
                   len(y[s : s + chunk])) for s in range(0, n, chunk)]
        return chunks, keep


def _zero_copy_converter(tf: Any) -> Callable:
    """``array -> tf.Tensor`` sharing the array's memory (DLPack), else copying (``tf.constant``).

    TensorFlow copies every numpy array it is given (``tf.constant``, ``tf.convert_to_tensor``,
    arguments of a ``tf.function``); DLPack does not, but TensorFlow aborts the process on a buffer
    that is not 64-byte aligned, so only :func:`_aligned_blocks` arrays are passed here.
    """
    from_dlpack = getattr(getattr(tf.experimental, "dlpack", None), "from_dlpack", None)
    if from_dlpack is None or not hasattr(numpy.ndarray, "__dlpack__"):
        return tf.constant

    def convert(array: numpy.ndarray) -> Any:
        return from_dlpack(array.__dlpack__())

    return convert


_ALIGN = 64  # bytes: TensorFlow's EIGEN_MAX_ALIGN_BYTES on x86-64


def _aligned_blocks(shapes: Sequence[tuple[int, ...]], rows: int) -> list[numpy.ndarray]:
    """Float32 arrays ``(rows, *shape)``, one per shape, each C-contiguous and 64-byte aligned.

    They are views of one buffer (over-allocated as bytes, then offset to an aligned address).
    """
    step = _ALIGN // 4
    sizes = [rows * math.prod(shape) for shape in shapes]
    starts, total = [], 0
    for size in sizes:
        starts.append(total)
        total += -(-size // step) * step
    raw = numpy.empty(total * 4 + _ALIGN, numpy.uint8)
    skip = -raw.ctypes.data % _ALIGN
    flat = raw[skip : skip + total * 4].view(numpy.float32)
    return [flat[a : a + n].reshape(rows, *shape) for a, n, shape in zip(starts, sizes, shapes)]


# --------------------------------------------------------------------------------------------
# The evaluator
# --------------------------------------------------------------------------------------------
class BatchedEvaluator:
    """Fitness of many weight vectors at once on a shared minibatch.

    The evaluator is a picklable callable: ``evaluator(individual)`` returns one fitness tuple (the
    DEAP ``evaluate`` signature) and :meth:`evaluate_population` returns one per individual from a
    single vectorised computation. :class:`BatchedMap` calls the latter from DEAP's loops.

    Minibatches: minibatch number ``step`` holds ``batch_size`` training samples drawn without
    replacement by ``numpy.random.default_rng((seed, step))``, so any process computes the same
    minibatch for the same step. With ``resample=True`` each :meth:`next_step` (called by
    :class:`BatchedMap` once per ``map`` call, i.e. once per generation in DEAP's loops) moves to a
    new minibatch; with ``resample=False`` the step stays 0 (a fixed minibatch).

    Args:
        model: A :class:`NetworkSpec`, or a built Keras model. A ``Sequential`` model of supported
            layers is converted to a spec (batched); any other model is evaluated one individual
            at a time with ``set_weights`` and a forward call (the fallback).
        x: Training inputs, shape ``(N, *input_shape)``, float32.
        y: Integer class labels, shape ``(N,)``.
        fitness: ``"neg_cross_entropy"`` (maximise minus the mean cross-entropy) or
            ``"accuracy"``.
        batch_size: Samples per minibatch (``<= N``); ``None`` uses all of ``x``.
        resample: Draw a new minibatch per generation (True) or keep one fixed minibatch (False).
        seed: Seed of the minibatch draws.
        chunk_size: Individuals per TensorFlow call (bounds memory; conv fronts need it).
        failure_value: Fitness of a non-finite output; default ``-inf`` for cross-entropy and
            ``0.0`` for accuracy.
        skip_zero_inputs: When the first weight layer is Dense, leave out of it the input
            features that are zero in every sample of the minibatch (and the kernel rows they
            would multiply): exact zeros, so the same scores for less work on sparse inputs
            such as MNIST's blank border pixels. A non-finite weight still gives a failure.
    """

    def __init__(
        self,
        model: Any,
        x: numpy.ndarray,
        y: numpy.ndarray,
        *,
        fitness: str = "neg_cross_entropy",
        batch_size: int | None = 256,
        resample: bool = True,
        seed: int = 0,
        chunk_size: int = 1024,
        failure_value: float | None = None,
        skip_zero_inputs: bool = True,
    ):
        if fitness not in FITNESSES:
            raise ValueError(f"fitness must be one of {FITNESSES}, got {fitness!r}")
        x = numpy.asarray(x, dtype=numpy.float32)
        y = numpy.asarray(y)
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise ValueError(f"y must be 1-D integer class labels, got shape {y.shape} dtype {y.dtype}")
        if batch_size is not None and not 1 <= batch_size <= x.shape[0]:
            raise ValueError(f"batch_size must be in [1, {x.shape[0]}], got {batch_size!r}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
        self.fitness = fitness
        self.batch_size = batch_size
        self.resample = resample
        self.seed = seed
        self.chunk_size = chunk_size
        self.skip_zero_inputs = bool(skip_zero_inputs)
        self.failure_value = (
            failure_value if failure_value is not None
            else (float("-inf") if fitness == "neg_cross_entropy" else 0.0)
        )
        self.x = x
        self.y = y.astype(numpy.int32)
        self.step = 0
        self.spec: NetworkSpec | None
        self._keras_config: str | None = None
        if isinstance(model, NetworkSpec):
            self.spec = model
        else:
            try:
                self.spec = NetworkSpec.from_model(model)
            except UnsupportedModel:
                self.spec = None
                self._keras_config = model.to_json()
                self._fallback_layout = WeightLayout.from_model(model)
        if self.spec is not None:
            if tuple(x.shape[1:]) != self.spec.input_shape:
                raise ValueError(
                    f"x samples have shape {tuple(x.shape[1:])}, the model expects "
                    f"{self.spec.input_shape}"
                )
            self.layout = self.spec.layout()
        else:
            self.layout = self._fallback_layout
        self._graph: Any = None
        self._model: Any = None
        self._batches: tuple | None = None  # (step key, sample chunks as tensors)
        self._scratch = threading.local()  # per thread: {P: aligned weight blocks}

    # -- pickling: TensorFlow state is rebuilt per process ----------------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_graph"] = None
        state["_model"] = None
        state["_batches"] = None
        state.pop("_scratch", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._batches = None
        self._scratch = threading.local()

    @property
    def batched(self) -> bool:
        """True when the vectorised graph is used (False: per-individual fallback)."""
        return self.spec is not None

    @property
    def size(self) -> int:
        """Number of weights per individual."""
        return self.layout.size

    # -- minibatches -------------------------------------------------------------------------
    def next_step(self) -> int:
        """Advance to the next minibatch when ``resample`` is on; return the current step."""
        if self.resample:
            self.step += 1
        return self.step

    def minibatch(self, step: int | None = None) -> tuple[numpy.ndarray, numpy.ndarray]:
        """``(x, y)`` of minibatch ``step`` (default: the current step)."""
        step = self.step if step is None else step
        if self.batch_size is None or self.batch_size == self.x.shape[0]:
            return self.x, self.y
        rng = numpy.random.default_rng((self.seed, step))
        idx = rng.choice(self.x.shape[0], self.batch_size, replace=False)
        idx.sort()
        return self.x[idx], self.y[idx]

    # -- evaluation --------------------------------------------------------------------------
    def __call__(self, individual: Any) -> tuple:
        """Fitness of one individual on the current minibatch (DEAP's ``evaluate``)."""
        return self.evaluate_population([individual])[0]

    def evaluate_population(self, individuals: Any, step: int | None = None) -> list[tuple]:
        """Fitness tuples for a list of individuals (or a ``(P, n)`` matrix) on one minibatch.

        Args:
            individuals: Weight vectors of length :attr:`size`, or a 2-D array.
            step: Minibatch number; default the current :attr:`step`.

        Returns:
            One ``(value,)`` per individual; a :class:`deapnn.core.failures.Failure` carrying
            ``failure_value`` where the network's output is not finite.
        """
        if len(individuals) == 0:
            return []
        if self.spec is None:
            x, y = self.minibatch(step)
            ce, acc, finite = self.scores(individuals, x, y)
        else:
            rows = self._rows(individuals)
            inputs, n = self._batch_tensors(self.step if step is None else step)
            ce, acc, finite = self._graph_scores(rows, inputs, n)
        values = -ce if self.fitness == "neg_cross_entropy" else acc
        out: list[tuple] = []
        for value, ok in zip(values.tolist(), finite.tolist()):
            if ok and math.isfinite(value):
                out.append((value,))
            else:
                out.append(Failure((self.failure_value,), "non-finite network output"))
        return out

    def scores(
        self, weights: Any, x: numpy.ndarray, y: numpy.ndarray, sample_chunk: int = 2048
    ) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """Mean cross-entropy, accuracy and finiteness of each individual on ``(x, y)``.

        Args:
            weights: ``(P, n)`` matrix or list of vectors.
            x: Inputs (any number of samples; processed in chunks of ``sample_chunk``).
            y: Integer labels.

        Returns:
            ``(cross_entropy (P,), accuracy (P,), finite (P,) bool)`` as numpy arrays.
        """
        x = numpy.asarray(x, dtype=numpy.float32)
        y = numpy.asarray(y).astype(numpy.int32)
        n = x.shape[0]
        if self.spec is not None:
            inputs = self._ensure_graph().prepare(x, y, sample_chunk)
            return self._graph_scores(self._rows(weights), inputs, n)
        weights = self._matrix(weights)
        ce = numpy.zeros(weights.shape[0], numpy.float64)
        acc = numpy.zeros(weights.shape[0], numpy.float64)
        finite = numpy.ones(weights.shape[0], bool)
        for s in range(0, n, sample_chunk):
            xs, ys = x[s : s + sample_chunk], y[s : s + sample_chunk]
            for p in range(0, weights.shape[0], self.chunk_size):
                c, a, f = self._fitness(weights[p : p + self.chunk_size], xs, ys)
                ce[p : p + self.chunk_size] += c * len(ys)
                acc[p : p + self.chunk_size] += a * len(ys)
                finite[p : p + self.chunk_size] &= f
        return ce / n, acc / n, finite

    def predict(self, weights: Any, x: numpy.ndarray, sample_chunk: int = 2048) -> numpy.ndarray:
        """Network outputs (softmax probabilities for a softmax head), shape ``(P, B, K)``.

        A single vector gives ``(1, B, K)``.
        """
        x = numpy.asarray(x, dtype=numpy.float32)
        if self.spec is not None:
            graph = self._ensure_graph()
            rows = self._rows(weights)
            out = numpy.empty((len(rows), x.shape[0], self.spec.n_outputs), numpy.float32)
            for p in range(0, len(rows), self.chunk_size):
                params = tuple(graph.tensor(b) for b in self._blocks(rows[p : p + self.chunk_size]))
                for s in range(0, x.shape[0], sample_chunk):
                    part = graph.predict(params, graph.constant(x[s : s + sample_chunk])).numpy()
                    out[p : p + self.chunk_size, s : s + sample_chunk] = part
            return out
        weights = self._matrix(weights)
        outs = []
        for s in range(0, x.shape[0], sample_chunk):
            parts = [
                self._predict(weights[p : p + self.chunk_size], x[s : s + sample_chunk])
                for p in range(0, weights.shape[0], self.chunk_size)
            ]
            outs.append(numpy.concatenate(parts, axis=0))
        return numpy.concatenate(outs, axis=1)

    # -- internals ---------------------------------------------------------------------------
    def _matrix(self, individuals: Any) -> numpy.ndarray:
        if isinstance(individuals, numpy.ndarray) and individuals.ndim == 1:
            individuals = individuals[None, :]
        weights = as_matrix(individuals)
        if weights.shape[1] != self.size:
            raise ValueError(
                f"weight vectors have length {weights.shape[1]}, the model has {self.size} parameters"
            )
        return weights

    def _rows(self, individuals: Any) -> numpy.ndarray | list[numpy.ndarray]:
        """The weight vectors as a 2-D array or a list of 1-D arrays, checked, not copied."""
        if isinstance(individuals, numpy.ndarray) and individuals.ndim in (1, 2):
            rows = individuals[None, :] if individuals.ndim == 1 else individuals
            length = rows.shape[1]
        else:
            rows = vector_rows(individuals)
            length = rows[0].shape[0]
        if length != self.size:
            raise ValueError(f"weight vectors have length {length}, the model has {self.size} parameters")
        return rows

    def _blocks(self, rows: numpy.ndarray | list[numpy.ndarray]) -> list[numpy.ndarray]:
        """Copy ``rows`` into this thread's reusable blocks, one per graph input.

        Block ``i`` is ``(P, *shape)`` of span ``i`` of :func:`_weight_plan` (a weight variable,
        or a first Dense layer's kernel and bias) of every individual, C-contiguous and 64-byte
        aligned, so TensorFlow takes it without a copy (:func:`_zero_copy_converter`)
        and no layer slices its weights out of a ``(P, n)`` matrix. One copy of the weights per
        call (numpy, no per-element Python); the blocks of the last two population sizes are
        kept and overwritten by the next call of the same size.
        """
        pop = len(rows)
        spans = self._ensure_graph().spans
        cache = getattr(self._scratch, "blocks", None)
        if cache is None:
            cache = self._scratch.blocks = {}
        blocks = cache.get(pop)
        if blocks is None:
            if len(cache) >= 2:
                cache.clear()
            blocks = cache[pop] = _aligned_blocks([shape for _, _, shape in spans], pop)
        if isinstance(rows, numpy.ndarray):
            for (a, b, _), block in zip(spans, blocks):
                block.reshape(pop, b - a)[...] = rows[:, a:b]
        else:
            for (a, b, _), block in zip(spans, blocks):
                numpy.concatenate([row[a:b] for row in rows], out=block.reshape(-1), casting="unsafe")
        return blocks

    def _batch_tensors(self, step: int) -> tuple[tuple, int]:
        """Minibatch ``step`` as :meth:`_Graph.prepare` inputs (2048-sample chunks), and its size.

        Converted once per step and kept (one step at a time), so the generation's calls and
        chunks reuse the tensors instead of copying numpy arrays into TensorFlow every call.
        """
        key = None if self.batch_size is None or self.batch_size == self.x.shape[0] else step
        cached = self._batches
        if cached is not None and cached[0] == key:
            return cached[1]
        x, y = self.minibatch(step)
        inputs = self._ensure_graph().prepare(x, y)
        self._batches = (key, (inputs, x.shape[0]))
        return inputs, x.shape[0]

    def _graph_scores(
        self, rows: Any, inputs: tuple, n: int
    ) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """:meth:`scores` through the batched graph, on :meth:`_Graph.prepare` inputs."""
        graph = self._ensure_graph()
        batches, keep = inputs
        pop = len(rows)
        ce = numpy.zeros(pop, numpy.float64)
        acc = numpy.zeros(pop, numpy.float64)
        finite = numpy.ones(pop, bool)
        for p in range(0, pop, self.chunk_size):
            params = tuple(graph.tensor(b) for b in self._blocks(rows[p : p + self.chunk_size]))
            for xs, ys, k in batches:
                c, a, f = graph.fitness(params, xs, ys, keep)
                ce[p : p + self.chunk_size] += c.numpy() * k
                acc[p : p + self.chunk_size] += a.numpy() * k
                finite[p : p + self.chunk_size] &= f.numpy()
            del params  # the tensors share the blocks' memory, which the next call overwrites
        return ce / n, acc / n, finite

    def _ensure_graph(self) -> "_Graph":
        if self._graph is None:
            self._graph = _Graph(self.spec, prune=self.skip_zero_inputs)
        return self._graph

    def _ensure_model(self) -> Any:
        if self._model is None:
            import keras

            self._model = keras.models.model_from_json(self._keras_config)
            from deapnn.weights.codec import WeightCodec

            self._codec = WeightCodec(self._model)
        return self._model

    def _fitness(self, weights: numpy.ndarray, x: numpy.ndarray, y: numpy.ndarray):
        """Per-individual fallback (models the batched graph does not cover)."""
        probs = self._predict(weights, x)
        with numpy.errstate(all="ignore"):
            finite = numpy.isfinite(probs).all(axis=(1, 2))
            p_true = numpy.take_along_axis(probs, numpy.broadcast_to(y[None, :, None], (len(probs), len(y), 1)), 2)
            ce = -numpy.log(numpy.clip(p_true[..., 0], 1e-12, None)).mean(axis=1)
            acc = (probs.argmax(axis=-1) == y[None, :]).mean(axis=1)
        return ce, acc, finite

    def _predict(self, weights: numpy.ndarray, x: numpy.ndarray) -> numpy.ndarray:
        """Per-individual fallback: ``set_weights`` (through the codec) and a forward call."""
        model = self._ensure_model()
        outs = []
        for row in weights:
            self._codec.decode(row)
            outs.append(numpy.asarray(model(x, training=False)))
        return numpy.stack(outs)


def evaluate_chunk(evaluator: BatchedEvaluator, individuals: Any, step: int) -> list[tuple]:
    """Module-level helper for process pools: ``evaluator.evaluate_population(individuals, step)``."""
    return evaluator.evaluate_population(individuals, step)


def _unwrap(func: Callable) -> Callable:
    """The evaluator behind ``toolbox.evaluate`` (``Toolbox.register`` wraps it in a partial)."""
    while (
        isinstance(func, functools.partial)
        and not func.args
        and not func.keywords
        and not isinstance(func, BatchedEvaluator)
    ):
        func = func.func
    return func


class BatchedMap:
    """A DEAP ``map`` that evaluates the individuals it is given together.

    ``toolbox.register("map", BatchedMap())`` with ``toolbox.evaluate`` a
    :class:`BatchedEvaluator`: each ``toolbox.map(toolbox.evaluate, individuals)`` call (one per
    generation in ``eaSimple`` / ``eaGenerateUpdate``) advances the evaluator to its next minibatch
    (when it resamples) and evaluates all individuals in one vectorised computation. Any other
    function is mapped with ``mapper`` as usual.

    Args:
        mapper: A ``map``-like callable used for other functions, and, when ``chunk_size`` is
            set, to spread chunks of the population over workers (e.g. a process pool's ``map``;
            each chunk is evaluated on the same minibatch step).
        chunk_size: Individuals per chunk sent through ``mapper``; ``None`` evaluates the whole
            population in this process.
    """

    def __init__(self, mapper: Callable = map, chunk_size: int | None = None):
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size!r}")
        self.mapper = mapper
        self.chunk_size = chunk_size
        self.calls = 0
        self.evaluations = 0

    def __call__(self, func: Callable, iterable: Iterable) -> list:
        func = _unwrap(func)
        if not isinstance(func, BatchedEvaluator):
            return list(self.mapper(func, iterable))
        individuals = list(iterable)
        self.calls += 1
        self.evaluations += len(individuals)
        step = func.next_step()
        if self.chunk_size is None:
            return func.evaluate_population(individuals, step)
        chunks = [
            as_matrix(individuals[i : i + self.chunk_size])
            for i in range(0, len(individuals), self.chunk_size)
        ]
        results = self.mapper(functools.partial(evaluate_chunk, func, step=step), chunks)
        return [fit for chunk in results for fit in chunk]
