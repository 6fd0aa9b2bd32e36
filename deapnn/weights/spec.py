"""Network descriptions the batched graph evaluates: plain, picklable layer specs (no TensorFlow).

A :class:`NetworkSpec` is a feed-forward stack of :class:`DenseSpec`, :class:`Conv2DSpec`,
:class:`PoolSpec`, :class:`BatchNormSpec`, :class:`FlattenSpec` and :class:`ReshapeSpec` layers.
It is built directly (``NetworkSpec.mlp((28, 28), [128], 10)``) or read from a Keras model that
is one chain of layers, Sequential or Functional (:meth:`NetworkSpec.from_model`, which raises
:class:`UnsupportedModel` for layers the graph does not cover: the evaluator then runs the model
through Keras itself, :mod:`deapnn.weights.stateless`), knows its weight :meth:`~NetworkSpec.layout` (Keras' order) and builds the
equivalent Keras model (:meth:`~NetworkSpec.build_keras`). Layer specs validate in their
constructors and raise ValueError naming the bad value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from deapnn.weights.codec import WeightLayout

__all__ = [
    "DenseSpec",
    "Conv2DSpec",
    "PoolSpec",
    "BatchNormSpec",
    "FlattenSpec",
    "ReshapeSpec",
    "LayerSpec",
    "NetworkSpec",
    "UnsupportedModel",
    "ACTIVATIONS",
]

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax", "elu", "selu", "gelu", "swish")


def _check_activation(name: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")
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
class BatchNormSpec:
    """Batch normalisation over the last (channel) axis in inference mode, then ``activation``.

    Its variables, in Keras' order: ``gamma`` (if ``scale``), ``beta`` (if ``center``),
    ``moving_mean``, ``moving_variance``; all four are genes of the weight vector (see
    :mod:`deapnn.weights.codec`). Output: ``(x - mean) / sqrt(variance + epsilon) * gamma + beta``.
    """

    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    activation: str = "linear"

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ValueError(f"BatchNormSpec: epsilon must be > 0, got {self.epsilon!r}")
        _check_activation(self.activation)


@dataclass(frozen=True)
class FlattenSpec:
    """Flatten all but the batch axis (row-major, as Keras does)."""


@dataclass(frozen=True)
class ReshapeSpec:
    """Reshape each sample to ``target_shape``."""

    target_shape: tuple[int, ...]


LayerSpec = DenseSpec | Conv2DSpec | PoolSpec | BatchNormSpec | FlattenSpec | ReshapeSpec


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
        """Describe a ``keras.Sequential`` model, or a Functional model whose layers form one
        chain (one input, one output, each layer fed by the one before), of supported layers.

        Supported: InputLayer, Flatten, Reshape, Dense, Conv2D (channels last, no dilation,
        no groups), MaxPooling2D, AveragePooling2D, BatchNormalization (last axis, after a
        weight layer; inference mode), Dropout (identity at inference), Activation.

        Raises:
            UnsupportedModel: For anything else (use the per-individual fallback).
        """
        if type(model).__name__ != "Sequential":
            _check_chain(model)
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
            elif kind == "BatchNormalization":
                axis = cfg.get("axis", -1)
                axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
                rank = len(layer.input.shape) if hasattr(layer, "input") else None
                if axis != -1 and (rank is None or axis != rank - 1):
                    raise UnsupportedModel(f"layer {layer.name!r}: batch normalisation over axis "
                                           f"{cfg.get('axis')!r} is not batched (last axis only)")
                layers.append(BatchNormSpec(float(cfg["epsilon"]), bool(cfg.get("center", True)),
                                            bool(cfg.get("scale", True))))
            elif kind == "Activation":
                _supported_activation(act, layer)
                if not layers or not isinstance(layers[-1], (DenseSpec, Conv2DSpec, BatchNormSpec)):
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
            elif isinstance(layer, BatchNormSpec):
                if not per_individual:
                    raise UnsupportedModel(f"layer {i}: batch normalisation before the first "
                                           "weight layer is not batched")
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
            elif isinstance(layer, BatchNormSpec):
                shapes += [(prev[-1],)] * (int(layer.scale) + int(layer.center) + 2)
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
            elif isinstance(layer, BatchNormSpec):
                names += [f"batch_norm_{i}/{v}" for v in batch_norm_variables(layer)]
        return WeightLayout.from_shapes(self.weight_shapes(), names=names)

    def build_keras(self) -> Any:
        """An equivalent ``keras.Sequential`` model (imports Keras)."""
        from deapnn.core.console import import_tensorflow

        import_tensorflow()
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
            elif isinstance(layer, BatchNormSpec):
                layers.append(keras.layers.BatchNormalization(
                    epsilon=layer.epsilon, center=layer.center, scale=layer.scale))
                if layer.activation != "linear":
                    layers.append(keras.layers.Activation(layer.activation))
            else:
                cls = keras.layers.MaxPooling2D if layer.kind == "max" else keras.layers.AveragePooling2D
                layers.append(cls(layer.pool_size, layer.strides, layer.padding))
        return keras.Sequential(layers)


def batch_norm_variables(layer: BatchNormSpec) -> list[str]:
    """Names of a :class:`BatchNormSpec`'s variables, in Keras' order."""
    return (["gamma"] if layer.scale else []) + (["beta"] if layer.center else []) + \
        ["moving_mean", "moving_variance"]


def _check_chain(model: Any) -> None:
    """Raise UnsupportedModel unless the Functional ``model`` is one chain of layers."""
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        raise UnsupportedModel(f"model {getattr(model, 'name', '?')!r} of type "
                               f"{type(model).__name__} is not a one-input, one-output chain")
    previous = inputs[0]
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        try:
            fed, out = layer.input, layer.output
        except (AttributeError, ValueError) as err:  # a layer used more than once, a sub-model
            raise UnsupportedModel(f"layer {layer.name!r} is not one link of a chain") from err
        if fed is not previous or isinstance(out, (list, tuple)):
            raise UnsupportedModel(f"layer {layer.name!r} is not fed by the layer before it")
        previous = out
    if previous is not outputs[0]:
        raise UnsupportedModel("the model's output is not its last layer's")


def _supported_activation(name: str, layer: Any) -> None:
    if name not in ACTIVATIONS:
        raise UnsupportedModel(f"layer {layer.name!r}: activation {name!r} is not batched")


def _conv_out(hw: Sequence[int], kernel: Sequence[int], strides: Sequence[int], padding: str):
    if padding == "same":
        return tuple(-(-n // s) for n, s in zip(hw, strides))
    out = tuple((n - k) // s + 1 for n, k, s in zip(hw, kernel, strides))
    if min(out) < 1:
        raise ValueError(f"window {tuple(kernel)} does not fit input {tuple(hw)}")
    return out
