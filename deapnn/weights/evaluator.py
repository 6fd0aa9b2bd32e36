"""Population-batched evaluation of weight vectors: :class:`BatchedEvaluator`.

The evaluator scores a whole population on one minibatch in one TensorFlow computation
(:class:`~deapnn.weights.graph.BatchedGraph`); models the graph does not cover fall back to one
Keras forward pass per individual (``set_weights`` + call). The fitness is the negative mean
cross-entropy or the accuracy on a minibatch drawn from the training data; a non-finite output
gives a :class:`deapnn.core.failures.Failure` fitness.

Per call, the individuals are copied once, with numpy, into reusable 64-byte-aligned blocks
(:func:`~deapnn.weights.buffers.aligned_blocks`), one per graph input, which TensorFlow then reads
in place through DLPack; the minibatch is converted to TensorFlow once per step.

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
import threading
from typing import Any, Sequence

import numpy

from deapnn.core.failures import Failure
from deapnn.weights.buffers import aligned_blocks
from deapnn.weights.codec import WeightLayout
from deapnn.weights.spec import NetworkSpec, UnsupportedModel
from deapnn.weights.types import as_matrix, vector_rows

__all__ = ["BatchedEvaluator", "evaluate_chunk", "FITNESSES"]

FITNESSES = ("neg_cross_entropy", "accuracy")


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
        model: A :class:`NetworkSpec`, or a built Keras model. A ``Sequential`` model of supported
            layers is converted to a spec (batched); any other model is evaluated one individual
            at a time with ``set_weights`` and a forward call (the fallback).
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

    Raises:
        ValueError: Naming the bad value: an unknown ``fitness``, no samples, a sample count
            that differs between ``x`` and ``y``, non-finite inputs, labels that are not whole
            numbers or lie outside ``[0, n_classes)``, an input shape the model does not take,
            or a ``batch_size`` / ``chunk_size`` / ``failure`` out of range.
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
    ):
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
            self.n_classes: int | None = self.spec.n_outputs
        else:
            self.layout = self._fallback_layout
            width = (getattr(model, "output_shape", None) or (None,))[-1]
            self.n_classes = int(width) if isinstance(width, (int, numpy.integer)) else None
        self.x = x
        self.y = _check_labels(y, self.n_classes, "y")
        self._graph: Any = None
        self._model: Any = None
        self._batches: tuple | None = None  # (step key, sample chunks as tensors)
        self._scratch = threading.local()  # per thread: {P: aligned weight blocks}

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
            :attr:`failure` where the network's output is not finite.

        Raises:
            ValueError: For weight vectors of another length or a non-numeric dtype (named).
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
            ``(cross_entropy (P,), accuracy (P,), finite (P,) bool)`` as numpy arrays.
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
            length, dtype = rows.shape[1], rows.dtype
        else:
            rows = vector_rows(individuals)
            length, dtype = rows[0].shape[0], rows[0].dtype
        if dtype.kind not in "fiu":
            raise ValueError(f"weight vectors must hold real numbers, got dtype {dtype}")
        if length != self.size:
            raise ValueError(f"weight vectors have length {length}, the model has {self.size} parameters")
        return rows

    def _blocks(self, rows: numpy.ndarray | list[numpy.ndarray]) -> list[numpy.ndarray]:
        """Copy ``rows`` into this thread's reusable blocks, one per graph input.

        Block ``i`` is ``(P, *shape)`` of span ``i`` of :func:`~deapnn.weights.graph.weight_plan` (a weight variable,
        or a first Dense layer's kernel and bias) of every individual, C-contiguous and 64-byte
        aligned, so TensorFlow takes it without a copy (:func:`~deapnn.weights.graph.zero_copy_converter`)
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
            blocks = cache[pop] = aligned_blocks([shape for _, _, shape in spans], pop)
        if isinstance(rows, numpy.ndarray):
            for (a, b, _), block in zip(spans, blocks):
                block.reshape(pop, b - a)[...] = rows[:, a:b]
        else:
            for (a, b, _), block in zip(spans, blocks):
                numpy.concatenate([row[a:b] for row in rows], out=block.reshape(-1), casting="unsafe")
        return blocks

    def _batch_tensors(self, step: int) -> tuple[tuple, int]:
        """Minibatch ``step`` as :meth:`BatchedGraph.prepare` inputs (2048-sample chunks), and its size.

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
        """:meth:`scores` through the batched graph, on :meth:`BatchedGraph.prepare` inputs."""
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

    def _ensure_graph(self) -> Any:
        if self._graph is None:
            from deapnn.weights.graph import BatchedGraph

            self._graph = BatchedGraph(self.spec, prune=self.skip_zero_inputs)
        return self._graph

    def _ensure_model(self) -> Any:
        if self._model is None:
            from deapnn.core.console import import_tensorflow

            import_tensorflow()
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
