"""Population-batched evaluation of weight vectors: :class:`BatchedEvaluator`.

The evaluator scores a whole population on one minibatch in one TensorFlow computation. Three
paths, chosen once per model (``path="auto"``), all giving the same fitness:

* ``"spec"``: a :class:`~deapnn.weights.spec.NetworkSpec` (Dense, Conv2D, pooling, Flatten,
  Reshape, Dropout, Activation in one chain, Sequential or Functional) runs through the
  hand-written batched einsum/grouped-convolution graph (:class:`~deapnn.weights.graph.BatchedGraph`),
  the fastest where it applies (``benchmarks/weights_throughput.py``);
* ``"stateless"``: any other Keras 3 model runs through its own layers,
  ``model.stateless_call`` under ``tf.vectorized_map`` (:mod:`deapnn.weights.stateless`): batch
  normalisation, other layers and branching Functional graphs need no whitelist;
* ``"fallback"``: a model that cannot be traced that way is evaluated one individual at a time
  (``set_weights`` + call), after a one-time warning naming the layer.

The flat vector is :class:`~deapnn.weights.codec.WeightLayout` order, every variable of
``model.weights`` (a batch normalisation layer's moving statistics included) on every path.
Output rule, on every path: a softmax output layer is read through its logits (its
pre-activations), any other output is read as logits (like ``from_logits=True``).

The fitness is the negative mean cross-entropy or the accuracy on a minibatch drawn from the
training data; a weight vector holding NaN or inf, or a non-finite network output, gives a
:class:`deapnn.core.failures.Failure` fitness for that individual only.

Population buffer: when the individuals are consecutive rows of one 64-byte-aligned float32 array
(:func:`~deapnn.weights.buffers.shared_matrix`, as strategies built on
:func:`~deapnn.weights.buffers.aligned_matrix` produce), TensorFlow reads that array in place
through DLPack and cuts each layer's weights out of it inside the graph. Otherwise (e.g. a
population of ``initRepeat``) the individuals are copied once, with numpy, into a reusable aligned
matrix of the same layout, so both ways give the same bits. On the spec path with a first Dense
layer the rows are padded (:attr:`BatchedEvaluator.row_length`, see
:func:`deapnn.weights.graph.row_layout`); constructing the evaluator asks
:func:`~deapnn.weights.buffers.population_matrix` to lay strategies' buffers out so. The minibatch is converted to TensorFlow once per step.

The evaluator follows the population-evaluator protocol of :mod:`deapnn.parallel`
(``evaluate_population(individuals, step)`` and ``next_step()``): the backends' maps
(:func:`deapnn.parallel.get_map`, e.g. ``SerialMap()``) advance it once per ``map`` call and send
it stacked chunks of the population, so ``algorithms.eaSimple`` and ``algorithms.eaGenerateUpdate``
run unchanged. It pickles; TensorFlow is imported and the graph built lazily, once per process,
on first use. Its minibatch position is checkpointed through :meth:`BatchedEvaluator.state` /
:meth:`~BatchedEvaluator.load_state`, and :meth:`~BatchedEvaluator.fingerprint` identifies the
fitness it computes.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import warnings
from typing import Any, Sequence

import numpy

from deapnn.core.failures import Failure
from deapnn.weights.buffers import (ALIGN, aligned_matrix, padded_matrix, prefer_row_length,
                                    shared_matrix)
from deapnn.weights.codec import WeightLayout
from deapnn.weights.spec import Conv2DSpec, NetworkSpec, UnsupportedModel
from deapnn.weights.types import vector_rows

__all__ = ["BatchedEvaluator", "evaluate_chunk", "FITNESSES", "PATHS"]

FITNESSES = ("neg_cross_entropy", "accuracy")
PATHS = ("auto", "spec", "stateless", "fallback")
#: floats of one tile's activations per fitness call of a convolutional spec (see _chunk):
#: 2**22 (16 MB) scored the benchmark's conv model 1.14x faster than 2**21 once its pooled
#: convolution ran as one XLA function (64 individuals per call instead of 32, measured);
#: 2**23 lets weights_mnist.py's GA score its population of 100 in one call instead of 65 + 35
#: (1.05-1.1x faster there, the same for the 64 of weights_throughput.py's conv model)
TILE_CHUNK_FLOATS = 1 << 23
_WARNED: set[str] = set()  # fallback warnings already given in this process


def _fill(target: numpy.ndarray, rows: Any) -> None:
    """Copies a population (a matrix or a sequence of vectors) into ``target``, row by row."""
    if isinstance(rows, numpy.ndarray):
        target[...] = rows
    else:
        for i, row in enumerate(rows):
            target[i] = row


class BatchedEvaluator:
    """Fitness of many weight vectors at once on a shared minibatch.

    The evaluator is a picklable callable: ``evaluator(individual)`` returns one fitness tuple (the
    DEAP ``evaluate`` signature) and :meth:`evaluate_population` returns one per individual from a
    single vectorised computation. The parallel backends' maps (``deapnn.parallel.SerialMap()``,
    :func:`deapnn.parallel.get_map`) call the latter from DEAP's loops.

    Minibatches: minibatch number ``step`` holds ``batch_size`` training samples drawn without
    replacement by ``numpy.random.default_rng((seed, step))``, so any process computes the same
    minibatch for the same step. With ``resample=True`` each :meth:`next_step` (called by the
    backend map once per ``map`` call, i.e. once per generation in DEAP's loops) moves to a new
    minibatch; with ``resample=False`` the step stays 0 (a fixed minibatch). The step is the
    evaluator's whole random state: :meth:`state` / :meth:`load_state` save and restore it, so a
    resumed run draws the same minibatches.

    Args:
        model: A :class:`NetworkSpec`, or a built Keras 3 model (Sequential or Functional, any
            layers). See the module docstring for the three paths.
        x: Training inputs, shape ``(N, *input_shape)``, float32, finite, ``N >= 1``.
        y: Integer class labels in ``[0, n_classes)``, shape ``(N,)`` (floats holding whole
            numbers are accepted).
        fitness: ``"neg_cross_entropy"`` (maximise minus the mean cross-entropy) or
            ``"accuracy"``.
        batch_size: Samples per minibatch (``<= N``); ``None`` uses all of ``x``.
        resample: Draw a new minibatch per generation (True) or keep one fixed minibatch (False).
        seed: Seed of the minibatch draws.
        chunk_size: Individuals per TensorFlow call (bounds memory; conv fronts need it).
        failure: Fitness of a non-finite output, a number or a one-value tuple; default ``-inf``
            for cross-entropy and ``0.0`` for accuracy. Kept as the tuple :attr:`failure` (the
            name :class:`deapnn.keras.KerasEvaluator` and the backends use).
        skip_zero_inputs: When the first weight layer is Dense, leave out of it the input
            features that are zero in every sample of the minibatch (and the kernel rows they
            would multiply): exact zeros, so the same scores for less work on sparse inputs
            such as MNIST's blank border pixels. A non-finite weight still gives a failure.
        path: ``"auto"`` (the spec graph where the model is covered, else ``"stateless"``, else
            the fallback), or one of ``"spec"``, ``"stateless"``, ``"fallback"`` to force it
            (a forced path the model cannot take is a ValueError). The chosen one is
            :attr:`path`.

    Raises:
        ValueError: Naming the bad value: an unknown ``fitness``, no samples, a sample count
            that differs between ``x`` and ``y``, non-finite inputs, labels that are not whole
            numbers or lie outside ``[0, n_classes)``, an input shape the model does not take,
            a ``batch_size`` / ``chunk_size`` / ``failure`` out of range, or an unknown or
            impossible ``path``.
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
        failure: float | Sequence[float] | None = None,
        skip_zero_inputs: bool = True,
        path: str = "auto",
    ):
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        if fitness not in FITNESSES:
            raise ValueError(f"fitness must be one of {FITNESSES}, got {fitness!r}")
        x = numpy.asarray(x, dtype=numpy.float32)
        y = numpy.asarray(y)
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"x holds no samples (shape {x.shape}); the evaluator needs at least one")
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D class labels, got shape {y.shape}")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        _check_inputs(x, "x")
        if isinstance(batch_size, bool) or (batch_size is not None and not (
                isinstance(batch_size, (int, numpy.integer)) and 1 <= batch_size <= x.shape[0])):
            raise ValueError(f"batch_size must be in [1, {x.shape[0]}], got {batch_size!r}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, numpy.integer)) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, numpy.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.fitness = fitness
        self.batch_size = None if batch_size is None else int(batch_size)
        self.resample = bool(resample)
        self.seed = int(seed)
        self.chunk_size = int(chunk_size)
        self.skip_zero_inputs = bool(skip_zero_inputs)
        self.failure = _failure_values(failure, fitness)
        self.step = 0
        self.spec: NetworkSpec | None = None
        self._keras_config: str | None = None
        self._stateless: Any = None
        if isinstance(model, NetworkSpec) and path in ("auto", "spec"):
            self.spec = model
        else:
            if isinstance(model, NetworkSpec):
                model = model.build_keras()
            if path in ("auto", "spec"):
                try:
                    self.spec = NetworkSpec.from_model(model)
                except UnsupportedModel as err:
                    if path == "spec":
                        raise ValueError(f"path='spec' cannot take this model: {err}") from err
        if self.spec is not None:
            self.path = "spec"
            if tuple(x.shape[1:]) != self.spec.input_shape:
                raise ValueError(
                    f"x samples have shape {tuple(x.shape[1:])}, the model expects "
                    f"{self.spec.input_shape}"
                )
            self.layout = self.spec.layout()
            self.n_classes: int | None = self.spec.n_outputs
            from deapnn.weights.graph import row_layout

            #: the row length (floats) of the population matrix the spec graph reads; the
            #: population buffers of strategies in this process are laid out so (see
            #: :func:`deapnn.weights.buffers.prefer_row_length`) and read without a copy
            self.row_length = row_layout(self.spec)[0]
            prefer_row_length(self.layout.size, self.row_length)
        else:
            expected = tuple(getattr(model, "input_shape", (None,))[1:])
            if all(isinstance(d, int) for d in expected) and tuple(x.shape[1:]) != expected:
                raise ValueError(f"x samples have shape {tuple(x.shape[1:])}, the model expects "
                                 f"{expected}")
            self._keras_config = model.to_json()
            self.layout = WeightLayout.from_model(model)
            self.row_length = self.layout.size
            width = (getattr(model, "output_shape", None) or (None,))[-1]
            self.n_classes = int(width) if isinstance(width, (int, numpy.integer)) else None
            self.path = "fallback"
        self.x = x
        self.y = _check_labels(y, self.n_classes, "y")
        self._graph: Any = None
        self._model: Any = None
        self._batches: tuple | None = None  # (step key, sample chunks as tensors)
        self._scratch = threading.local()  # per thread: reusable aligned weight matrices
        if self.spec is None and path in ("auto", "stateless"):
            # the one expensive check, after every argument's: trace Keras' own layers once
            try:
                self._ensure_stateless(x[:1])
                self.path = "stateless"
            except Exception as err:  # noqa: BLE001  (any trace failure: named, then fallback)
                if path == "stateless":
                    raise ValueError(f"path='stateless' cannot take this model: "
                                     f"{_first_line(err)}") from err
                _warn_fallback(model, err)

    # -- state and identity ------------------------------------------------------------------
    def state(self) -> dict:
        """The evaluator's checkpoint state: ``{"step": int}``, the minibatch position.

        Minibatch ``step`` is drawn from ``default_rng((seed, step))``, so the step is all the
        random state there is; restoring it with :meth:`load_state` makes a resumed run draw the
        same minibatches as an uninterrupted one.
        """
        return {"step": int(self.step)}

    def load_state(self, state: dict) -> None:
        """Restore a :meth:`state` in place.

        Raises:
            ValueError: If ``state`` has no ``"step"`` or it is not an int >= 0.
        """
        step = state.get("step") if isinstance(state, dict) else None
        if isinstance(step, bool) or not isinstance(step, (int, numpy.integer)) or step < 0:
            raise ValueError(f"BatchedEvaluator state needs 'step', an int >= 0, got {state!r}")
        self.step = int(step)
        self._batches = None

    def fingerprint(self) -> str:
        """Hex digest of everything that decides a fitness.

        Covers the training data's content (``x`` and ``y`` bytes, dtypes and shapes), the
        network (spec, or the Keras model's config for the fallback), ``fitness`` (the metric),
        ``batch_size``, ``resample``, ``seed``, ``skip_zero_inputs`` and ``failure``; not
        ``chunk_size`` nor the current step (that is :meth:`state`), nor the workers that
        evaluate it.
        """
        digest = hashlib.sha256(self._data_digest().encode())
        network = repr(self.spec) if self.spec is not None else self._keras_config
        settings = (type(self).__qualname__, network, self.fitness, self.batch_size, self.resample,
                    self.seed, self.skip_zero_inputs, tuple(repr(v) for v in self.failure))
        digest.update(repr(settings).encode())
        return digest.hexdigest()

    def _data_digest(self) -> str:
        """sha256 of the training data, computed once: the run loop asks for the fingerprint at
        every call, and hashing MNIST's 55,000 images each time costs a tenth of a second."""
        if getattr(self, "_data_sha", None) is None:
            digest = hashlib.sha256()
            for array in (self.x, self.y):
                array = numpy.ascontiguousarray(array)
                digest.update(f"{array.dtype.str}{array.shape}".encode())
                digest.update(memoryview(array).cast("B"))
            self._data_sha = digest.hexdigest()
        return self._data_sha

    # -- pickling: TensorFlow state is rebuilt per process ----------------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_graph"] = None
        state["_model"] = None
        state["_stateless"] = None
        state["_batches"] = None
        state.pop("_scratch", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._batches = None
        self._scratch = threading.local()

    @property
    def batched(self) -> bool:
        """True when the population is evaluated in one computation (:attr:`path` ``"spec"`` or
        ``"stateless"``); False for the per-individual fallback."""
        return self.path != "fallback"

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
            individuals: Float weight vectors of length :attr:`size`, or a 2-D float array.
                Consecutive rows of one aligned float32 array (the population buffer) are read
                without a copy.
            step: Minibatch number; default the current :attr:`step`.

        Returns:
            One ``(value,)`` per individual; a :class:`deapnn.core.failures.Failure` carrying
            :attr:`failure` for an individual whose weights hold NaN or inf (reason
            ``"non-finite weights"``) or whose network output is not finite (reason
            ``"non-finite network output"``); the others are scored as usual.

        Raises:
            ValueError: For weight vectors of another length (named).
            TypeError: For weight vectors that are not floating point (the dtype named).
        """
        if len(individuals) == 0:
            return []
        rows = self._rows(individuals)
        inputs, n = self._batch_tensors(self.step if step is None else step)
        ce, acc, finite, finite_w = self._run(rows, inputs, n)
        values = -ce if self.fitness == "neg_cross_entropy" else acc
        out: list[tuple] = []
        for value, ok, ok_w in zip(values.tolist(), finite.tolist(), finite_w.tolist()):
            if not ok_w:
                out.append(Failure(self.failure, "non-finite weights"))
            elif ok and math.isfinite(value):
                out.append((value,))
            else:
                out.append(Failure(self.failure, "non-finite network output"))
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
            ``(cross_entropy (P,), accuracy (P,), finite (P,) bool)`` as numpy arrays; ``finite``
            is False where the weights or the outputs hold NaN or inf.
        """
        x = numpy.asarray(x, dtype=numpy.float32)
        y = numpy.asarray(y)
        n = x.shape[0]
        if n == 0:
            raise ValueError(f"x holds no samples (shape {x.shape})")
        if y.shape != (n,):
            raise ValueError(f"y must hold one label per sample of x ({n}), got shape {y.shape}")
        _check_inputs(x, "x")
        y = _check_labels(y, self.n_classes, "y")
        ce, acc, finite, finite_w = self._run(self._rows(weights), self._prepare(x, y, sample_chunk), n)
        return ce, acc, finite & finite_w

    def predict(self, weights: Any, x: numpy.ndarray, sample_chunk: int = 2048) -> numpy.ndarray:
        """Network outputs, shape ``(P, B, K)``: softmax probabilities for a softmax output
        layer, the raw outputs (logits) otherwise. A single vector gives ``(1, B, K)``."""
        x = numpy.asarray(x, dtype=numpy.float32)
        rows = self._rows(weights)
        pop = len(rows)
        out = numpy.empty((pop, x.shape[0], self.n_classes or 0), numpy.float32)
        if self.path == "fallback":
            model = self._ensure_model()
            for i in range(pop):
                self._codec.decode(rows[i])
                for s in range(0, x.shape[0], sample_chunk):
                    logits = numpy.asarray(model(x[s : s + sample_chunk], training=False))
                    out[i, s : s + sample_chunk] = (_softmax(_as_logits(logits, self._head))
                                                    if self._head else logits)
            return out
        size = self._chunk(min(sample_chunk, x.shape[0]))
        for p in range(0, pop, size):
            chunk = rows[p : p + size]
            if self.path == "spec":
                graph = self._ensure_graph()
                params = graph.tensor(self._padded(chunk))
                run, inputs = graph.predict, graph.inputs
            else:
                graph = self._ensure_stateless()
                params = graph_tensor(self._matrix(_two_rows(chunk)))
                run, inputs = graph.predict, _constant
            for s in range(0, x.shape[0], sample_chunk):
                xs = inputs(x[s : s + sample_chunk])
                part = run(params, xs).numpy()[: len(chunk)]
                out[p : p + size, s : s + sample_chunk] = part
            del params
        return out

    # -- internals ---------------------------------------------------------------------------
    def _rows(self, individuals: Any) -> numpy.ndarray | list[numpy.ndarray]:
        """The weight vectors as a 2-D array or a list of 1-D arrays, checked, not copied."""
        if isinstance(individuals, numpy.ndarray) and individuals.ndim in (1, 2):
            rows = individuals[None, :] if individuals.ndim == 1 else individuals
            length, dtypes = rows.shape[1], {rows.dtype}
        else:
            rows = vector_rows(individuals)
            length, dtypes = rows[0].shape[0], {row.dtype for row in rows}
        for dtype in dtypes:
            if dtype.kind != "f":
                raise TypeError(f"weight vectors must hold floating-point numbers (float32 "
                                f"expected), got dtype {dtype}")
        if length != self.size:
            raise ValueError(f"weight vectors have length {length}, the model has {self.size} parameters")
        return rows

    def _chunk(self, samples: int, tiled: bool = False) -> int:
        """Individuals per TensorFlow call: :attr:`chunk_size`, and for a spec with convolutions
        at most as many as keep the largest activation, ``(individuals, samples, H, W, C)``,
        within 2**23 floats (32 MB): the population lives in the channel axis there, and
        tensors that outgrow the caches made a population of 64 on 256 MNIST images 1.4x
        slower than chunks of 8 (measured). With ``tiled`` (the fitness graph, which runs the
        layers tile by tile of samples, :func:`deapnn.weights.graph.tile_samples`), a tile's
        activations, ``(individuals, tile, H, W, C)``, within :data:`TILE_CHUNK_FLOATS`. Per
        individual the scores do not depend on it."""
        if self.path != "spec" or not any(isinstance(layer, Conv2DSpec) for layer in self.spec.layers):
            return self.chunk_size
        from deapnn.weights.graph import tile_samples, widest_activation

        widest = widest_activation(self.spec)
        if tiled:
            samples, budget = min(samples, tile_samples(self.spec)), TILE_CHUNK_FLOATS
        else:
            budget = 1 << 23
        return max(1, min(self.chunk_size, budget // max(1, samples * widest)))

    def _shared(self, rows: Any) -> numpy.ndarray | None:
        """``rows`` as a writable ``(P, n)`` float32 view of the population buffer when they are
        consecutive rows of one 64-byte-aligned array (TensorFlow then reads it in place), else
        None (the caller copies)."""
        if isinstance(rows, numpy.ndarray):
            matrix = rows if rows.dtype == numpy.float32 and rows.flags.c_contiguous else None
            first = matrix
        else:
            matrix = shared_matrix(rows)
            first = rows[0] if matrix is not None else None
        if (matrix is None or matrix.ctypes.data % ALIGN or not first.flags.writeable
                or (matrix.shape[0] > 1 and matrix.strides[0] != 4 * matrix.shape[1])):
            return None  # (padded rows are copied: DLPack takes compact arrays only)
        # shared_matrix's view is read-only, which DLPack refuses; this one is the same memory
        return numpy.lib.stride_tricks.as_strided(numpy.asarray(first).view(numpy.ndarray),
                                                  shape=matrix.shape, strides=matrix.strides)

    def _matrix(self, rows: Any) -> numpy.ndarray:
        """The population as an aligned ``(P, n)`` float32 matrix: the buffer itself, or a copy
        into this thread's reusable scratch matrix."""
        shared = self._shared(rows)
        if shared is not None:
            return shared
        pop = len(rows)
        cache = getattr(self._scratch, "matrix", None)
        if cache is None or cache.shape[0] != pop:
            cache = self._scratch.matrix = aligned_matrix(pop, self.size)
        _fill(cache, rows)
        return cache

    def _padded(self, rows: Any) -> numpy.ndarray:
        """The population as the spec graph's ``(P, row_length)`` float32 matrix: the
        population buffer itself with its zero padding when ``rows`` are its rows
        (:func:`~deapnn.weights.buffers.padded_matrix`; TensorFlow then reads it in place), else
        a copy into this thread's reusable, zero-padded, aligned scratch matrix (one numpy copy
        per call). Either way the graph sees the same matrix, so the same bits come out.
        """
        length = self.row_length
        if isinstance(rows, numpy.ndarray):
            if (length == self.size and rows.dtype == numpy.float32 and rows.flags.c_contiguous
                    and rows.flags.writeable and rows.ctypes.data % ALIGN == 0):
                return rows
        else:
            shared = padded_matrix(rows, length)
            if shared is not None:
                return shared
        pop = len(rows)
        cache = getattr(self._scratch, "padded", None)
        if cache is None or cache.shape[0] != pop:
            cache = self._scratch.padded = aligned_matrix(pop, length)
            cache[:, self.size :] = 0.0
        _fill(cache[:, : self.size], rows)
        return cache

    def _prepare(self, x: numpy.ndarray, y: numpy.ndarray, chunk: int = 2048) -> tuple:
        """Samples as the chosen path's inputs: ``([(x, y, count) per chunk], keep)``."""
        if self.path == "spec":
            return self._ensure_graph().prepare(x, y, chunk)
        if self.path == "fallback":
            return [(x[s : s + chunk], y[s : s + chunk], len(y[s : s + chunk]))
                    for s in range(0, x.shape[0], chunk)], None
        self._ensure_stateless()
        return [(_constant(x[s : s + chunk]), _constant(y[s : s + chunk]), len(y[s : s + chunk]))
                for s in range(0, x.shape[0], chunk)], None

    def _batch_tensors(self, step: int) -> tuple[tuple, int]:
        """Minibatch ``step`` as :meth:`_prepare` inputs (2048-sample chunks), and its size.

        Converted once per step and kept (one step at a time), so the generation's calls and
        chunks reuse the tensors instead of copying numpy arrays into TensorFlow every call.
        """
        key = None if self.batch_size is None or self.batch_size == self.x.shape[0] else step
        cached = self._batches
        if cached is not None and cached[0] == key:
            return cached[1]
        x, y = self.minibatch(step)
        inputs = self._prepare(x, y)
        self._batches = (key, (inputs, x.shape[0]))
        return inputs, x.shape[0]

    def _run(self, rows: Any, inputs: tuple, n: int) -> tuple[numpy.ndarray, ...]:
        """``(cross-entropy, accuracy, finite outputs, finite weights)`` per individual on
        :meth:`_prepare` inputs, by the chosen path, ``chunk_size`` individuals per call."""
        batches, keep = inputs
        pop = len(rows)
        ce = numpy.zeros(pop, numpy.float64)
        acc = numpy.zeros(pop, numpy.float64)
        finite = numpy.ones(pop, bool)
        finite_w = numpy.ones(pop, bool)
        size = self._chunk(max(k for _, _, k in batches), tiled=True)
        for p in range(0, pop, size):
            chunk = rows[p : p + size]
            part = slice(p, p + size)
            if self.path == "fallback":
                fn = lambda xs, ys: self._fallback_scores(chunk, xs, ys)  # noqa: E731
            elif self.path == "spec":
                graph = self._ensure_graph()
                params = graph.tensor(self._padded(chunk))
                fn = lambda xs, ys: graph.fitness(params, xs, ys, keep)  # noqa: E731
            else:
                graph = self._ensure_stateless()
                params = graph_tensor(self._matrix(_two_rows(chunk)))
                fn = lambda xs, ys: graph.fitness(params, xs, ys)  # noqa: E731
            for xs, ys, k in batches:
                c, a, f, fw = (numpy.asarray(v)[: len(chunk)] for v in fn(xs, ys))
                ce[part] += c * k
                acc[part] += a * k
                finite[part] &= f
                finite_w[part] &= fw
            params = None  # the tensors share the buffers' memory, which the next call overwrites
        for i in numpy.flatnonzero(~finite_w):  # a flag from a sum: confirm, exactly
            finite_w[i] = bool(numpy.isfinite(numpy.asarray(rows[i])).all())
        return ce / n, acc / n, finite, finite_w

    def _ensure_graph(self) -> Any:
        if self._graph is None:
            from deapnn.weights.graph import BatchedGraph

            self._graph = BatchedGraph(self.spec, prune=self.skip_zero_inputs)
        return self._graph

    def _ensure_stateless(self, probe: numpy.ndarray | None = None) -> Any:
        """The process's :class:`~deapnn.weights.stateless.StatelessGraph` (built on first use;
        with ``probe`` samples, also run once, raising what TensorFlow raises)."""
        if self._stateless is None:
            from deapnn.weights.stateless import StatelessGraph

            graph = StatelessGraph(self._keras_config, self.layout)
            if probe is not None:
                zeros = numpy.zeros((2, self.size), numpy.float32)
                graph.fitness(zeros, probe, numpy.zeros(len(probe), numpy.int32))
            self._stateless = graph
        return self._stateless

    def _ensure_model(self) -> Any:
        if self._model is None:
            from deapnn.weights.codec import WeightCodec
            from deapnn.weights.stateless import model_logits_copy

            self._model, self._head = model_logits_copy(self._keras_config)
            self._codec = WeightCodec(self._model)
        return self._model

    def _fallback_scores(self, weights: Any, x: numpy.ndarray, y: numpy.ndarray):
        """Per-individual fallback: ``set_weights`` (through the codec) and a forward call of
        the logits copy of the model; cross-entropy from the logits (the output rule)."""
        model = self._ensure_model()
        pop = len(weights)
        ce = numpy.zeros(pop)
        acc = numpy.zeros(pop)
        finite = numpy.ones(pop, bool)
        finite_w = numpy.ones(pop, bool)
        for i in range(pop):
            row = numpy.asarray(weights[i])
            if not numpy.isfinite(row).all():
                finite_w[i] = False
                continue
            self._codec.decode(row)
            logits = _as_logits(numpy.asarray(model(x, training=False), numpy.float64), self._head)
            finite[i] = numpy.isfinite(logits).all()
            with numpy.errstate(all="ignore"):
                top = logits.max(axis=-1, keepdims=True)
                log_probs = logits - top - numpy.log(numpy.exp(logits - top).sum(axis=-1, keepdims=True))
                ce[i] = -log_probs[numpy.arange(len(y)), y].mean()
                acc[i] = (logits.argmax(axis=-1) == y).mean()
        return ce, acc, finite, finite_w


def _two_rows(rows: Any) -> Any:
    """``rows``, with its one row repeated when there is only one: ``vectorized_map``'s loop
    fallback (e.g. for a convolution whose filter differs per individual) fails on a population
    of one; the caller keeps the first result."""
    if len(rows) != 1:
        return rows
    return numpy.concatenate([rows, rows]) if isinstance(rows, numpy.ndarray) else [rows[0], rows[0]]


def graph_tensor(matrix: numpy.ndarray) -> Any:
    """A ``(P, n)`` aligned float32 matrix as a TensorFlow tensor sharing its memory (DLPack)."""
    from deapnn.core.console import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    from deapnn.weights.graph import zero_copy_converter

    return zero_copy_converter(tf)(matrix)


def _constant(array: numpy.ndarray) -> Any:
    import tensorflow as tf

    return tf.constant(array)


def _as_logits(out: numpy.ndarray, head: str | None) -> numpy.ndarray:
    """The output rule for a forward pass of a logits copy: a ``Softmax`` layer's
    probabilities become their log; anything else already is logits."""
    if head == "layer":
        with numpy.errstate(divide="ignore"):
            return numpy.log(numpy.maximum(out, 1e-30))
    return out


def _softmax(logits: numpy.ndarray) -> numpy.ndarray:
    e = numpy.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(numpy.float32)


def _first_line(err: BaseException) -> str:
    """The message of ``err`` in one short line (Keras' "Exception encountered" banner and
    TensorFlow's trace skipped)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "Exception encountered when calling" in line and i + 1 < len(lines):
            return f"{type(err).__name__}: {lines[i + 1]}"[:300]
    return f"{type(err).__name__}: {lines[-1] if lines else ''}"[:300]


def _warn_fallback(model: Any, err: BaseException) -> None:
    """One warning per model and cause: which layer cannot be batched, then the fallback.

    The layer is the one Keras names in "Exception encountered when calling <Class>.call()",
    else the layer whose name the error mentions (the longest such name)."""
    text = str(err)
    calling = re.search(r"when calling (\w+)\.call\(\)", text)
    layers = list(getattr(model, "_flatten_layers", lambda **_: model.layers)(
        include_self=False, recursive=True))
    layer = None
    if calling:
        layer = next((l for l in layers if type(l).__name__ == calling.group(1)), None)
    if layer is None:
        named = [l for l in layers if l.name and l.name in text]
        layer = max(named, key=lambda l: len(l.name)) if named else None
    where = (f"layer {layer.name!r} ({type(layer).__name__})" if layer is not None
             else f"model {getattr(model, 'name', '?')!r}")
    message = (f"BatchedEvaluator: {where} cannot be batched ({_first_line(err)}); "
               "evaluating one individual at a time (set_weights + call), far slower")
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def evaluate_chunk(evaluator: BatchedEvaluator, individuals: Any, step: int) -> list[tuple]:
    """Module-level helper for process pools: ``evaluator.evaluate_population(individuals, step)``."""
    return evaluator.evaluate_population(individuals, step)


def _failure_values(failure: Any, fitness: str) -> tuple[float]:
    """``failure`` as a one-value tuple (the metric's worst value when None)."""
    if failure is None:
        return (float("-inf"),) if fitness == "neg_cross_entropy" else (0.0,)
    values = tuple(failure) if isinstance(failure, (tuple, list)) else (failure,)
    if len(values) != 1 or isinstance(values[0], bool) or not isinstance(values[0], (int, float, numpy.number)) \
            or math.isnan(values[0]):
        raise ValueError(f"failure must be one number (not NaN) or a one-value tuple, got {failure!r}")
    return (float(values[0]),)


def _check_inputs(x: numpy.ndarray, name: str) -> None:
    """Raise ValueError naming the count and first position of non-finite values in ``x``."""
    bad = ~numpy.isfinite(x)
    if bad.any():
        first = numpy.unravel_index(int(numpy.flatnonzero(bad)[0]), x.shape)
        raise ValueError(
            f"{name} holds {int(bad.sum())} non-finite values (NaN or inf), the first "
            f"{x[first]!r} at index {tuple(int(i) for i in first)}"
        )


def _check_labels(y: numpy.ndarray, n_classes: int | None, name: str) -> numpy.ndarray:
    """``y`` as int32 class labels, or ValueError naming the labels that are not in ``[0, n_classes)``."""
    if y.dtype.kind == "f":
        whole = numpy.isfinite(y) & (y == numpy.round(y))
        if not whole.all():
            raise ValueError(f"{name} must hold integer class labels, got non-integer values "
                             f"{sorted(set(y[~whole].tolist()))[:5]}")
    elif y.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.size and n_classes is not None:
        outside = (y < 0) | (y >= n_classes)
        if outside.any():
            raise ValueError(f"{name} holds labels outside [0, {n_classes}) (the model's outputs): "
                             f"{sorted(set(y[outside].tolist()))[:5]}")
    return y.astype(numpy.int32)
