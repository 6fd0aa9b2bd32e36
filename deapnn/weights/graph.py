"""The batched TensorFlow computation of a :class:`~deapnn.weights.spec.NetworkSpec`.

:class:`BatchedGraph` computes the forward pass of a whole population in one TensorFlow graph:
a Dense layer on a shared input is one broadcast batched matmul ``(1, B, I) @ (P, I, U)``, later
Dense layers are batched matmuls ``(P, B, I) @ (P, I, U)``, a first Conv2D is one convolution with
``P * F`` filters and later convolutions are grouped convolutions (``P`` groups); batch
normalisation (inference) is a per-individual scale and shift. The head computes the softmax
cross-entropy from logits laid out ``(P, K, B)``. When the first weight layer is Dense, input
features that are zero in every sample of the minibatch are left out of it (``prune``): exact,
and on MNIST about 29% less work in the dominant layer.

The population comes either as one block per span (:meth:`BatchedEvaluator._blocks`, a copy) or
as the ``(P, n)`` population buffer itself, read in place (DLPack) and cut into spans inside the
graph; both give the same bits. Per individual, the results do not depend on ``P`` (the plain
head; see :class:`BatchedGraph`), so a population scored in other chunks (SCOOP workers) scores
the same. Non-finite weights are flagged per individual (a sum per span, and for the first Dense
kernel, the bulk of an MLP, one extra all-ones sample whose pre-activations are its column sums).

TensorFlow is imported only when a graph is built (inside a worker, on first use).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy

from deapnn.weights.spec import (BatchNormSpec, Conv2DSpec, DenseSpec, FlattenSpec, NetworkSpec,
                                 PoolSpec, ReshapeSpec)

__all__ = ["BatchedGraph", "weight_plan", "zero_copy_converter"]

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


def weight_plan(spec: NetworkSpec) -> tuple[list[tuple], list[tuple[int, int, tuple[int, ...]]]]:
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
        elif isinstance(layer, BatchNormSpec):
            for _ in range(int(layer.scale) + int(layer.center) + 2):
                off, size, shape = next(variables)
                spans.append((off, off + size, shape))
                indices.append(len(spans) - 1)
        plan.append((layer, out_shape, indices, merged))
    return plan, spans


def _first_dense(plan: Sequence[tuple]) -> tuple | None:
    """The entry of a :func:`weight_plan` plan for the first weight layer when it is Dense (on
    the shared input), else None."""
    first = next(entry for entry in plan if isinstance(entry[0], (DenseSpec, Conv2DSpec)))
    return first if isinstance(first[0], DenseSpec) else None


def _build_forward(spec: NetworkSpec, pruned: bool = False) -> Callable:
    """Python function ``(params, x (B, ...)) -> logits (P, B, K)`` for tf.function.

    With ``classes_first=True`` the logits come out as ``(P, K, B)``. With ``probe=True`` (a
    first Dense layer, not pruned) one all-ones sample is appended to the batch at the first
    Dense layer and ``(logits, probe)`` is returned: ``probe`` ``(P, U)`` holds that sample's
    pre-activations, the first layer's kernel column sums plus bias, non-finite where one of
    those weights is; the logits then hold ``B + 1`` samples, the probe last.

    With ``pruned`` (only when the first weight layer is Dense, see :func:`_first_dense`), ``x``
    is the flat input already reduced to the columns ``keep`` (the kept input features, then a
    column of ones for a merged bias) and the first layer multiplies it with the matching rows
    of its kernel span, ``tf.gather(kernel, keep, axis=1)``; layers before it are skipped.

    ``params`` holds one tensor per span of :func:`weight_plan`, shaped ``(P, *span_shape)``
    (the population's blocks, see :meth:`BatchedEvaluator._blocks`), so no layer slices its
    weights out of a ``(P, n)`` matrix (a copy) inside the graph.

    Representations: ``shared`` (B, ...) until the first weight layer; ``packed``
    (B, H, W, P*C) after a convolution (the population lives in the channel axis, so pooling and
    grouped convolution apply unchanged); ``stacked`` (P, B, U) after a Dense layer.
    """
    from deapnn.core.console import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    plan, spans = weight_plan(spec)
    last = len(plan) - 1

    def forward(weights: Sequence[Any], x: Any, classes_first: bool = False,
                keep: Any = None, probe: bool = False) -> Any:
        pop = tf.shape(weights[0])[0]
        batch = tf.shape(x)[0]
        h = x
        probe_out = None
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
                if probe and mode == "shared":
                    # one more sample, all ones: its pre-activation is the kernel's column sums,
                    # non-finite when any of its weights is (or, rarely, when they overflow)
                    h = tf.concat([h, tf.ones((1, tf.shape(h)[1]), h.dtype)], axis=0)
                    batch = batch + 1
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
                if probe and mode == "shared":
                    probe_out = h[:, :, -1] if i == last and classes_first else h[:, -1, :]
                mode = "stacked"
                if not (i == last and layer.activation == "softmax"):
                    h = _activate(tf, h, layer.activation)
            elif isinstance(layer, BatchNormSpec):
                # inference: x * inv + (beta - mean * inv), inv = gamma / sqrt(variance + eps),
                # each (P, C), broadcast where the representation keeps the population
                it = iter(params)
                gamma = weights[next(it)] if layer.scale else None
                beta = weights[next(it)] if layer.center else None
                mean, variance = weights[next(it)], weights[next(it)]
                inv = tf.math.rsqrt(variance + tf.constant(layer.epsilon, variance.dtype))
                if gamma is not None:
                    inv = inv * gamma
                shift = -mean * inv if beta is None else beta - mean * inv
                if mode == "packed":  # (B, H, W, P * C)
                    h = h * tf.reshape(inv, (-1,)) + tf.reshape(shift, (-1,))
                else:  # stacked (P, B, C)
                    h = h * inv[:, None, :] + shift[:, None, :]
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
        return (h, probe_out) if probe else h

    return forward


class BatchedGraph:
    """Compiled tf.functions for one spec (one per process).

    They take the population as a tuple of tensors, one per span of :func:`weight_plan`, each
    shaped ``(P, *span_shape)`` (see :meth:`BatchedEvaluator._blocks`), or (:meth:`fitness`) as
    one ``(P, n)`` matrix; the signatures leave ``P`` and the number of samples free, so each
    function is traced once.

    Args:
        spec: The network.
        prune: Leave inputs that are zero in every sample out of a first Dense layer.
        fused: Fuse the head's elementwise work with XLA (faster, but its results then depend on
            the population size in the last bits; off by default).
    """

    def __init__(self, spec: NetworkSpec, prune: bool = False, fused: bool = False):
        from deapnn.core.console import import_tensorflow

        import_tensorflow()
        import tensorflow as tf

        plan, self.spans = weight_plan(spec)
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

        n = self.spans[-1][1] if self.spans else 0
        m_spec = tf.TensorSpec([None, n], tf.float32)
        spans = self.spans

        def split(matrix):
            """The population matrix ``(P, n)`` cut into the spans' tensors (in the graph)."""
            return tuple(tf.reshape(matrix[:, a:b], (-1, *shape)) for a, b, shape in spans)

        # Which weights may be non-finite, per individual: a sum over each span is non-finite
        # when one of its weights is (a sum is one fast pass; a sum of finite weights can
        # overflow, so the evaluator confirms flagged individuals exactly, in numpy). On the
        # dense path the first Dense kernel, the bulk of the weights, needs no pass of its own:
        # one extra sample of ones through the first layer gives its column sums (``probe``).
        probe = first is not None and not self.pruned
        probed = first[2] if probe else ()

        def body(head, weights, x, y, keep):
            if self.pruned:
                logits = fitness_forward(weights, x, True, keep)
                ok = []
            elif probe:  # logits (P, K, B + 1): the probe sample is the last
                logits, probe_out = forward(weights, x, classes_first=True, probe=True)
                logits = logits[:, :, :-1]
                ok = [tf.reduce_all(tf.math.is_finite(probe_out), axis=1)]
            else:  # a softmax head's pre-activations; other heads' outputs are read as logits
                logits = forward(weights, x, classes_first=True)  # (P, K, B)
                ok = []
            for j, w in enumerate(weights):
                if j not in probed:
                    total = tf.reduce_sum(tf.reshape(w, (tf.shape(w)[0], -1)), axis=1)
                    ok.append(tf.math.is_finite(total))
            return (*head(logits, y), tf.reduce_all(tf.stack(ok), axis=0))

        def make_fitness(head, matrix):
            """``(weights, x, y[, keep]) -> (ce, acc, finite outputs, finite weights)``; the
            weights as one ``(P, n)`` matrix (sliced in the graph) or as span blocks."""
            w_sig = m_spec if matrix else w_spec

            def prep(w):
                return split(w) if matrix else w

            if not self.pruned:
                @tf.function(autograph=False, input_signature=[w_sig, x_spec, y_spec])
                def fitness(w, x, y):
                    return body(head, prep(w), x, y, None)

                return fitness

            @tf.function(autograph=False, input_signature=[w_sig, tf.TensorSpec([None, None], tf.float32),
                                          y_spec, keep_spec])
            def pruned_fitness(w, x, y, keep):
                # a non-finite weight on a dropped input would make Keras' output NaN (0 * inf):
                # the weights' own check catches it
                return body(head, prep(w), x, y, keep)

            return pruned_fitness

        # The head is a dozen elementwise ops over (P, K, B). XLA can fuse them into one loop
        # (``fused=True``), but its reductions' order then depends on P: the same individual
        # scores differently (~1e-7) in chunks of different sizes, i.e. serially and under
        # SCOOP. So the plain graph is the default, whose per-individual results do not depend
        # on P. With ``fused=True``, where XLA is unavailable or fails, the first call falls
        # back to the plain graph (see :meth:`fitness`).
        fused_head = tf.function(head, jit_compile=True, autograph=False)
        self._fitness_fused = {m: make_fitness(fused_head, m) for m in (False, True)}
        self._fitness_plain = {m: make_fitness(head, m) for m in (False, True)}
        self._fused: bool | None = None if fused else False
        self._errors = (tf.errors.OpError, NotImplementedError)

        @tf.function(autograph=False, input_signature=[w_spec, x_spec])
        def predict(weights, x):
            out = forward(weights, x)
            return tf.nn.softmax(out, axis=-1) if self.softmax_output else out

        self.predict = predict
        self.tensor = zero_copy_converter(tf)
        self.constant = tf.constant

    def fitness(self, weights: Any, x: Any, y: Any, keep: Any = None) -> tuple[Any, Any, Any, Any]:
        """``(cross-entropy (P,), accuracy (P,), finite outputs (P,), finite weights (P,))``.

        ``weights`` is a tuple of span blocks (:meth:`BatchedEvaluator._blocks`) or one
        ``(P, n)`` population matrix (the population buffer), sliced into spans in the graph.
        When :attr:`pruned`, ``x`` and ``keep`` come from :meth:`prepare`.
        """
        matrix = not isinstance(weights, (tuple, list))
        args = (weights, x, y, keep) if self.pruned else (weights, x, y)
        if self._fused is None:
            try:
                out = self._fitness_fused[matrix](*args)
                self._fused = True
                return out
            except self._errors:
                self._fused = False
        return (self._fitness_fused if self._fused else self._fitness_plain)[matrix](*args)

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


def zero_copy_converter(tf: Any) -> Callable:
    """``array -> tf.Tensor`` sharing the array's memory (DLPack), else copying (``tf.constant``).

    TensorFlow copies every numpy array it is given (``tf.constant``, ``tf.convert_to_tensor``,
    arguments of a ``tf.function``); DLPack does not, but TensorFlow aborts the process on a buffer
    that is not 64-byte aligned, so only :func:`deapnn.weights.buffers.aligned_blocks` arrays are passed here.
    """
    from_dlpack = getattr(getattr(tf.experimental, "dlpack", None), "from_dlpack", None)
    if from_dlpack is None or not hasattr(numpy.ndarray, "__dlpack__"):
        return tf.constant

    def convert(array: numpy.ndarray) -> Any:
        return from_dlpack(array.__dlpack__())

    return convert
