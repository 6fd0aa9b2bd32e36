"""One flat float32 vector for all the weights of a built Keras model.

A :class:`WeightLayout` records, in the model's own order, the name, shape and layer of every
weight variable; it splits a flat vector into per-variable arrays and joins them back. It is a
plain frozen dataclass (no TensorFlow), so it pickles and can be built from shapes alone with
:meth:`WeightLayout.from_shapes`. :class:`WeightCodec` ties a layout to a model object: it reads the
model's weights into a vector (:meth:`WeightCodec.encode`) and writes a vector back
(:meth:`WeightCodec.decode`). Only methods of the model object are called, so importing this module
never imports TensorFlow.

Which variables are in the vector: by default every variable of ``model.weights``, in that order
(the order of ``model.get_weights()``), trainable or not, so a batch normalisation layer's
``moving_mean`` and ``moving_variance`` are genes next to its ``gamma`` and ``beta``: evolution
sets them like any weight, and a forward pass in inference mode reads them. With
``trainable_only=True`` they are left out (and left as they are in the model). The batched
evaluator (:class:`deapnn.weights.evaluator.BatchedEvaluator`) uses the default layout on every
path; variables outside ``model.weights`` (dropout's random-seed state) are never genes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy

__all__ = ["WeightLayout", "WeightCodec", "variable_role"]

_ROLES = ("kernel", "bias", "other")


def variable_role(name: str) -> str:
    """Classify a Keras variable by its name.

    Args:
        name: The variable's name or path, e.g. ``"sequential/dense/kernel"``.

    Returns:
        ``"kernel"`` for kernels (incl. depthwise/pointwise/embeddings), ``"bias"`` for biases and
        ``"other"`` for everything else (normalisation statistics, scales, ...).
    """
    last = name.rsplit("/", 1)[-1].split(":", 1)[0]
    if last.endswith("kernel") or last in ("embeddings",):
        return "kernel"
    if last == "bias":
        return "bias"
    return "other"


@dataclass(frozen=True)
class WeightLayout:
    """Names, shapes and layers of the weight variables behind one flat vector.

    Args:
        names: Variable names (Keras paths), in vector order.
        shapes: One shape per variable.
        layers: The name of the layer owning each variable.
        roles: ``"kernel"``, ``"bias"`` or ``"other"`` per variable (see :func:`variable_role`).
        trainable: Whether each variable is trainable.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    layers: tuple[str, ...]
    roles: tuple[str, ...]
    trainable: tuple[bool, ...]

    def __post_init__(self) -> None:
        n = len(self.names)
        for field in ("shapes", "layers", "roles", "trainable"):
            if len(getattr(self, field)) != n:
                raise ValueError(
                    f"WeightLayout: {field} has {len(getattr(self, field))} entries, names has {n}"
                )
        for name, shape in zip(self.names, self.shapes):
            if any((not isinstance(d, int)) or d < 0 for d in shape):
                raise ValueError(f"WeightLayout: variable {name!r} has invalid shape {shape!r}")
        for role in self.roles:
            if role not in _ROLES:
                raise ValueError(f"WeightLayout: role must be one of {_ROLES}, got {role!r}")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_shapes(
        cls,
        shapes: Sequence[Sequence[int]],
        names: Sequence[str] | None = None,
        layers: Sequence[str] | None = None,
    ) -> "WeightLayout":
        """Build a layout without a model, e.g. ``[(784, 32), (32,), (32, 10), (10,)]``.

        Args:
            shapes: Variable shapes in vector order.
            names: Optional names; default ``"layer_<i>/kernel"`` for shapes of rank >= 2 and
                ``"layer_<i>/bias"`` for vectors, where a bias belongs to the kernel before it.
            layers: Optional layer names; derived from ``names`` (the part before the last ``/``).

        Returns:
            The layout, every variable trainable.
        """
        shapes_t = tuple(tuple(int(d) for d in s) for s in shapes)
        if names is None:
            generated, layer = [], -1
            for shape in shapes_t:
                if len(shape) >= 2 or layer < 0:
                    layer += 1
                    generated.append(f"layer_{layer}/kernel")
                else:
                    generated.append(f"layer_{layer}/bias")
            names = generated
        names_t = tuple(str(n) for n in names)
        if layers is None:
            layers = [n.rsplit("/", 1)[0] if "/" in n else n for n in names_t]
        return cls(
            names=names_t,
            shapes=shapes_t,
            layers=tuple(layers),
            roles=tuple(variable_role(n) for n in names_t),
            trainable=(True,) * len(names_t),
        )

    @classmethod
    def from_model(cls, model: Any, trainable_only: bool = False) -> "WeightLayout":
        """Read the layout of a built Keras model.

        Args:
            model: A built ``keras.Model`` (its ``weights`` must exist).
            trainable_only: Keep only trainable variables (drops e.g. BatchNorm statistics).

        Returns:
            The layout, in the order of ``model.weights`` (the order of ``model.get_weights()``).

        Raises:
            ValueError: If the model has no weights yet (not built).
        """
        variables = _model_variables(model, trainable_only)
        if not variables:
            raise ValueError(
                f"WeightLayout.from_model: model {getattr(model, 'name', model)!r} has no "
                f"{'trainable ' if trainable_only else ''}weights; build it first "
                "(give it an input shape or call it once)"
            )
        names, layers = [], []
        for layer_name, var in variables:
            path = str(getattr(var, "path", None) or var.name)
            names.append(path)
            layers.append(layer_name)
        return cls(
            names=tuple(names),
            shapes=tuple(tuple(int(d) for d in var.shape) for _, var in variables),
            layers=tuple(layers),
            roles=tuple(variable_role(n) for n in names),
            trainable=tuple(bool(var.trainable) for _, var in variables),
        )

    # -- sizes --------------------------------------------------------------------------------
    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of scalars in each variable."""
        return tuple(math.prod(s) for s in self.shapes)

    @property
    def offsets(self) -> tuple[int, ...]:
        """Start of each variable in the flat vector."""
        out, pos = [], 0
        for size in self.sizes:
            out.append(pos)
            pos += size
        return tuple(out)

    @property
    def size(self) -> int:
        """Total number of parameters (the vector length)."""
        return sum(self.sizes)

    def __len__(self) -> int:
        return len(self.names)

    def slices(self) -> list[slice]:
        """One ``slice`` of the flat vector per variable."""
        return [slice(o, o + s) for o, s in zip(self.offsets, self.sizes)]

    def layer_names(self) -> tuple[str, ...]:
        """Distinct layer names, in vector order."""
        return tuple(dict.fromkeys(self.layers))

    def layer_slices(self) -> dict[str, slice]:
        """The contiguous slice of the flat vector owned by each layer."""
        out: dict[str, slice] = {}
        for layer, sl in zip(self.layers, self.slices()):
            if layer in out:
                if out[layer].stop != sl.start:
                    raise ValueError(f"WeightLayout: layer {layer!r} is not contiguous")
                out[layer] = slice(out[layer].start, sl.stop)
            else:
                out[layer] = sl
        return out

    # -- per-variable statistics ---------------------------------------------------------------
    def fans(self) -> list[tuple[int, int]]:
        """``(fan_in, fan_out)`` of each variable, as Keras' initialisers compute them.

        A kernel of shape ``(..., in, out)`` has ``fan_in = prod(shape[:-1])`` and
        ``fan_out = prod(shape[:-2]) * out`` (receptive field times channels for convolutions);
        biases and other vectors use the fans of the kernel before them in the same layer.
        """
        out: list[tuple[int, int]] = []
        last: dict[str, tuple[int, int]] = {}
        for layer, role, shape in zip(self.layers, self.roles, self.shapes):
            if len(shape) >= 2:
                receptive = math.prod(shape[:-2])
                fans = (receptive * shape[-2], receptive * shape[-1])
                last[layer] = fans
            elif len(shape) == 1:
                fans = last.get(layer, (shape[0], shape[0]))
            else:
                fans = (1, 1)
            out.append(fans)
        return out

    def scale_vector(self, per_variable: Sequence[float]) -> numpy.ndarray:
        """Expand one number per variable into a float32 vector of length :attr:`size`."""
        if len(per_variable) != len(self):
            raise ValueError(
                f"scale_vector: need {len(self)} values (one per variable), got {len(per_variable)}"
            )
        return numpy.repeat(numpy.asarray(per_variable, dtype=numpy.float32), self.sizes)

    def init_std(self, scheme: str = "glorot", biases: bool = False) -> numpy.ndarray:
        """Per-weight standard deviation of a Glorot- or He-normal initialisation.

        Args:
            scheme: ``"glorot"`` (``sqrt(2 / (fan_in + fan_out))``) or ``"he"``
                (``sqrt(2 / fan_in)``).
            biases: Give biases and other vectors their layer's kernel value (a per-layer
                scale, e.g. for mutation) instead of 0 (an initialisation).

        Returns:
            float32 vector of length :attr:`size` (one value per weight).
        """
        if scheme not in ("glorot", "he"):
            raise ValueError(f"init_std: scheme must be 'glorot' or 'he', got {scheme!r}")
        stds = []
        for (fan_in, fan_out), role, shape in zip(self.fans(), self.roles, self.shapes):
            if len(shape) < 2 and not biases:
                stds.append(0.0)
            elif scheme == "glorot":
                stds.append(math.sqrt(2.0 / (fan_in + fan_out)))
            else:
                stds.append(math.sqrt(2.0 / fan_in))
        return self.scale_vector(stds)

    # -- split / join -------------------------------------------------------------------------
    def check_vector(self, vector: Any) -> numpy.ndarray:
        """Validate a flat vector and return it as a float32 ndarray (no copy when possible).

        Raises:
            TypeError: If it is not numeric / not float32-convertible without loss of kind.
            ValueError: If its shape is not ``(size,)``.
        """
        arr = numpy.asarray(vector)
        if arr.dtype.kind not in "fiu":
            raise TypeError(
                f"weight vector must be numeric (float32 expected), got dtype {arr.dtype}"
            )
        if arr.ndim != 1:
            raise ValueError(
                f"weight vector must be 1-D of length {self.size}, got shape {arr.shape}"
            )
        if arr.shape[0] != self.size:
            raise ValueError(
                f"weight vector has length {arr.shape[0]}, the model has {self.size} parameters"
            )
        return arr.astype(numpy.float32, copy=False)

    def split(self, vector: Any) -> list[numpy.ndarray]:
        """Cut a flat vector into per-variable arrays (views of the vector when it is float32)."""
        arr = self.check_vector(vector)
        return [arr[sl].reshape(shape) for sl, shape in zip(self.slices(), self.shapes)]

    def join(self, arrays: Iterable[Any]) -> numpy.ndarray:
        """Concatenate per-variable arrays into a new flat float32 vector.

        Raises:
            ValueError: If the number of arrays or any shape differs from the layout.
        """
        arrays = list(arrays)
        if len(arrays) != len(self):
            raise ValueError(f"join: expected {len(self)} arrays, got {len(arrays)}")
        out = numpy.empty(self.size, dtype=numpy.float32)
        for arr, sl, shape, name in zip(arrays, self.slices(), self.shapes, self.names):
            arr = numpy.asarray(arr)
            if tuple(arr.shape) != shape:
                raise ValueError(f"join: variable {name!r} expects shape {shape}, got {arr.shape}")
            out[sl] = arr.reshape(-1)
        return out

    def to_dict(self) -> dict:
        """Plain-dict form (JSON-serialisable)."""
        return {
            "names": list(self.names),
            "shapes": [list(s) for s in self.shapes],
            "layers": list(self.layers),
            "roles": list(self.roles),
            "trainable": list(self.trainable),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "WeightLayout":
        """Inverse of :meth:`to_dict`."""
        return cls(
            names=tuple(data["names"]),
            shapes=tuple(tuple(s) for s in data["shapes"]),
            layers=tuple(data["layers"]),
            roles=tuple(data["roles"]),
            trainable=tuple(data["trainable"]),
        )


def _model_variables(model: Any, trainable_only: bool) -> list[tuple[str, Any]]:
    """(layer name, variable) pairs in ``model.weights`` order."""
    owner: dict[int, str] = {}
    for layer in getattr(model, "_flatten_layers", lambda **_: model.layers)(
        include_self=False, recursive=True
    ):
        for var in layer.weights:
            owner.setdefault(id(var), layer.name)
    variables = model.trainable_weights if trainable_only else model.weights
    return [(owner.get(id(v), getattr(model, "name", "model")), v) for v in variables]


class WeightCodec:
    """Encode a Keras model's weights as one flat float32 vector and decode them back.

    Args:
        model: A built ``keras.Model``.
        trainable_only: Encode only the trainable variables; decoding then leaves the
            non-trainable ones (e.g. BatchNorm moving statistics) untouched.

    Example:
        >>> codec = WeightCodec(model)
        >>> vector = codec.encode()          # float32, shape (codec.size,)
        >>> codec.decode(vector * 0.5)       # writes the weights back into the model
    """

    def __init__(self, model: Any, trainable_only: bool = False):
        self.model = model
        self.trainable_only = trainable_only
        self.layout = WeightLayout.from_model(model, trainable_only=trainable_only)
        self._variables = [v for _, v in _model_variables(model, trainable_only)]

    @property
    def size(self) -> int:
        """Number of parameters encoded."""
        return self.layout.size

    def __len__(self) -> int:
        return self.layout.size

    def encode(self) -> numpy.ndarray:
        """The model's current weights as a new float32 vector of length :attr:`size`."""
        return self.layout.join(numpy.asarray(v.numpy()) for v in self._variables)

    def decode(self, vector: Any) -> Any:
        """Write a flat vector into the model's variables.

        Args:
            vector: float32 (or other real) array of shape ``(size,)``.

        Returns:
            The model, for chaining.

        Raises:
            TypeError: For a non-numeric vector.
            ValueError: For a vector of the wrong shape or length.
        """
        arrays = self.layout.split(vector)
        if not self.trainable_only and len(self._variables) == len(self.model.weights):
            self.model.set_weights(arrays)
        else:
            for var, arr in zip(self._variables, arrays):
                var.assign(arr)
        return self.model

    def unflatten(self, vector: Any) -> list[numpy.ndarray]:
        """Per-variable arrays of a vector, as ``model.get_weights()`` would give them."""
        return self.layout.split(vector)
