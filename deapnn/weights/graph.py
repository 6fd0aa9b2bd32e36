"""The batched TensorFlow computation of a :class:`~deapnn.weights.spec.NetworkSpec`.

:class:`BatchedGraph` computes the forward pass of a whole population in one TensorFlow graph:
a Dense layer on a shared input is one broadcast batched matmul ``(1, B, I) @ (P, I, U)``, later
Dense layers are batched matmuls ``(P, B, I) @ (P, I, U)``, a first Conv2D is one convolution with
``P * F`` filters and later convolutions are grouped convolutions (``P`` groups). The head computes
the softmax cross-entropy from logits laid out ``(P, K, B)``, its elementwise work fused into one
XLA kernel where XLA is available. When the first weight layer is Dense, input features that are
zero in every sample of the minibatch are left out of it (``prune``): exact, and on MNIST about
29% less work in the dominant layer.

TensorFlow is imported only when a graph is built (inside a worker, on first use).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy

from deapnn.weights.spec import Conv2DSpec, DenseSpec, FlattenSpec, NetworkSpec, PoolSpec, ReshapeSpec

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
        plan.append((layer, out_shape, indices, merged))
    return plan, spans


def _first_dense(plan: Sequence[tuple]) -> tuple | None:
    """The entry of a :func:`weight_plan` plan for the first weight layer when it is Dense (on
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


class BatchedGraph:
    """Compiled tf.functions for one spec (one per process).

    Both take the population as a tuple of tensors, one per span of :func:`weight_plan`, each
    shaped ``(P, *span_shape)`` (see :meth:`BatchedEvaluator._blocks`); the signatures leave ``P``
    and the number of samples free, so each function is traced once.
    """

    def __init__(self, spec: NetworkSpec, prune: bool = False):
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
        self.tensor = zero_copy_converter(tf)
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
