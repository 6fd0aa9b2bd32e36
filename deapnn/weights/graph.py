"""The batched TensorFlow computation of a :class:`~deapnn.weights.spec.NetworkSpec`.

:class:`BatchedGraph` computes the forward pass of a whole population in one TensorFlow graph.
The population is one ``(P, length)`` float32 matrix, one individual per row
(:func:`row_layout`): when the first weight layer is Dense, rows are zero-padded to a multiple
of its width so that each row *is* a ``(rows, units)`` matrix whose first rows are the kernel
and the next the bias; the input, padded with zeros (and a one at the bias row), multiplies the
whole view in one broadcast batched matmul ``(1, B, rows) @ (P, rows, U)``: the weights are
never sliced or copied (1.4% extra arithmetic on zeros for 784-128-10). Later Dense layers are
batched matmuls ``(P, B, I) @ (P, I, U)``; a first Conv2D is one convolution with ``P * F``
filters, later convolutions are grouped convolutions (``P`` groups); a max pooling after a
convolution (and batch normalisation) with monotone activations runs right after the
convolution, the rest on the pooled quarter; batch normalisation (inference) is a
per-individual scale and shift. A first Conv2D followed by such a non-overlapping max pooling
reads its input as patches cut once per minibatch (:func:`patch_layout`): one matrix product
of the population's kernels, as rows, with the patches of every pooling offset, the max taken
at once, so the full-size convolution output is never written; a Dense layer after it reads
the pooled features as columns (a transposed product), so they are never transposed. Networks
without a first Dense layer run tile by tile of samples (:func:`tile_samples`, larger tiles
for a few individuals), so that activations stay in cache from layer to layer. The last
layer's bias and activation and the head (softmax cross-entropy, accuracy) run per individual
under XLA, with the classes as rows, so that the reductions over the classes are vectorised
over the samples. When the first weight layer is Dense, input features that are zero in every
sample of the minibatch can be left out of it (``prune``): exact, and on MNIST about 29% less
work in the dominant layer.

The matrix is the population buffer itself (:func:`deapnn.weights.buffers.population_matrix`,
read in place through DLPack) or a copy of the individuals into a padded scratch matrix; both
give the same bits. Per individual, the results do not depend on ``P``, so a population scored
in other chunks (SCOOP workers) scores the same. Non-finite weights are flagged per individual:
with a first Dense layer (not pruned) by the first sample's first-layer pre-activations (that
layer multiplies every weight of the padded row, and one non-finite product makes the sum
non-finite); otherwise by one sum per row.

TensorFlow is imported only when a graph is built (inside a worker, on first use).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy

from deapnn.weights.buffers import ALIGN
from deapnn.weights.spec import (BatchNormSpec, Conv2DSpec, DenseSpec, FlattenSpec, NetworkSpec,
                                 PoolSpec, ReshapeSpec)

__all__ = ["BatchedGraph", "row_layout", "weight_plan", "zero_copy_converter"]

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


_MONOTONE = ("linear", "relu")  # activations whose float implementation is non-decreasing


def _pool_first(plan: Sequence[tuple], i: int) -> tuple | None:
    """For the Conv2D at plan step ``i``: ``(batch-norm step or None, pool layer)`` when it is
    followed by an optional batch normalisation (linear) and then max pooling, with activations
    that are monotone (``_MONOTONE``), so that the pooling may run first; else None."""
    steps = pooled_steps(plan, i)
    if not steps or plan[i][0].activation not in _MONOTONE:
        return None
    norm = plan[steps[0]] if len(steps) == 2 else None
    if norm is not None and norm[0].activation not in _MONOTONE:
        return None
    return norm, plan[steps[-1]][0]


def pooled_steps(plan: Sequence[tuple], i: int) -> list[int]:
    """The plan steps after Conv2D step ``i`` up to a max pooling: ``[pool]`` or ``[batch
    norm, pool]``; empty when the layers after it are anything else."""
    nxt = [j for j in range(i + 1, min(i + 3, len(plan)))]
    if nxt and isinstance(plan[nxt[0]][0], PoolSpec) and plan[nxt[0]][0].kind == "max":
        return nxt[:1]
    if (len(nxt) == 2 and isinstance(plan[nxt[0]][0], BatchNormSpec)
            and isinstance(plan[nxt[1]][0], PoolSpec) and plan[nxt[1]][0].kind == "max"):
        return nxt
    return []


def patch_layout(spec: NetworkSpec) -> dict | None:
    """How the first convolution reads its input as pooling patches, or None where it cannot.

    When the first weight layer is a Conv2D (after Reshape / Flatten layers only) followed by
    max pooling that may run first (:func:`_pool_first`) with non-overlapping windows (strides
    equal to the pool size, ``"valid"`` padding), each pooled output is the max over the ``O``
    window offsets of one convolution output, each a dot product of the kernel with one
    ``kh * kw * cin`` patch of the input. The patches depend on the samples only, so they are
    cut out once per minibatch (:func:`pooling_patches`; :meth:`BatchedGraph.inputs` gathers them
    samples last, ``(kh * kw * cin, O, Hp * Wp, B)``) and the convolution of the whole
    population becomes one matrix product, ``(P * filters, kh * kw * cin)`` kernels as rows with
    the patches of all ``O`` offsets, whose max is taken at once: the full-size
    convolution output is never written (it was written and read back by the pooling, the
    dominant cost of a small convolutional network). Returns ``{"step", "input", "pad",
    "pooled", "pool", "strides", "kernel"}``.
    """
    plan, _ = weight_plan(spec)
    step = next(i for i, entry in enumerate(plan) if isinstance(entry[0], (DenseSpec, Conv2DSpec)))
    layer = plan[step][0]
    if not isinstance(layer, Conv2DSpec) or any(
            not isinstance(plan[i][0], (ReshapeSpec, FlattenSpec)) for i in range(step)):
        return None
    pooled = _pool_first(plan, step)
    if pooled is None:
        return None
    pool = pooled[1]
    strides = tuple(pool.strides or pool.pool_size)
    if pool.padding != "valid" or strides != tuple(pool.pool_size):
        return None
    shape = tuple(plan[step - 1][1]) if step else tuple(spec.input_shape)
    if len(shape) != 3:
        return None
    (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
    pads = []
    for size, k, st in ((shape[0], kh, sh), (shape[1], kw, sw)):
        if layer.padding == "same":
            out = -(-size // st)
            total = max((out - 1) * st + k - size, 0)
            pads.append((total // 2, total - total // 2))
        else:
            pads.append((0, 0))
    pooled_shape = tuple(plan[max(pooled_steps(plan, step))][1])
    return {"step": step, "input": shape, "pad": tuple(pads), "pooled": pooled_shape,
            "pool": tuple(pool.pool_size), "strides": (sh, sw), "kernel": (kh, kw)}


def pooling_patches(x: numpy.ndarray, layout: dict) -> numpy.ndarray:
    """The input patches of :func:`patch_layout`: ``(O, B, Hp * Wp, kh * kw * cin)`` float32,
    ``O = ph * pw`` window offsets, the taps in the kernel's ``(kh, kw, cin)`` order."""
    n = x.shape[0]
    h, w, c = layout["input"]
    x = numpy.pad(numpy.asarray(x).reshape(n, h, w, c), ((0, 0), *layout["pad"], (0, 0)))
    hp, wp, _ = layout["pooled"]
    (ph, pw), (sh, sw), (kh, kw) = layout["pool"], layout["strides"], layout["kernel"]
    out = numpy.empty((ph * pw, n, hp, wp, kh, kw, c), x.dtype)
    for a in range(ph):
        for b in range(pw):
            for u in range(kh):
                for v in range(kw):
                    rows = slice(a * sh + u, a * sh + u + (hp - 1) * ph * sh + 1, ph * sh)
                    cols = slice(b * sw + v, b * sw + v + (wp - 1) * pw * sw + 1, pw * sw)
                    out[a * pw + b, :, :, :, u, v, :] = x[:, rows, cols, :]
    return out.reshape(ph * pw, n, hp * wp, kh * kw * c)


def patch_indices(layout: dict) -> numpy.ndarray:
    """Where :func:`pooling_patches` reads each value: ``(O, Hp * Wp, taps)`` int32 indices into a
    sample flattened to ``h * w * cin`` values followed by one zero (the index of the zero
    stands for the padding). :meth:`BatchedGraph.prepare` gathers the patches with them inside
    TensorFlow: the same values as :func:`pooling_patches`, copied in one XLA op from the
    minibatch instead of cut out in numpy and then copied into TensorFlow (a minibatch of 256
    MNIST images for weights_mnist.py's 5x5 convolution: 2.3 ms instead of 6.8 ms, measured)."""
    h, w, c = layout["input"]
    where = numpy.arange(1, h * w * c + 1, dtype=numpy.float64).reshape(1, h, w, c)
    # pooling_patches' padding is 0: after the shift by one it is -1, mapped to the zero
    index = pooling_patches(where, layout)[:, 0].astype(numpy.int64) - 1
    index[index < 0] = h * w * c
    return index.astype(numpy.int32)


#: floats of one individual's widest activation per tile (see tile_samples)
TILE_FLOATS = 1 << 16
#: floats of the whole population's widest activation per tile at least: a call with few
#: individuals takes larger tiles (see BatchedGraph)
TILE_POPULATION_FLOATS = 1 << 22


def widest_activation(spec: NetworkSpec) -> int:
    """Values per sample of the network's largest layer output (the tiles' memory unit)."""
    return max(math.prod(shape) for shape in spec._shapes)


def tile_samples(spec: NetworkSpec) -> int:
    """Samples per tile, at least, of a network without a first Dense layer: the graph runs
    the layers tile by tile (``tf.while_loop``), so a tile's activations, ``(chunk, tile,
    widest)`` with the evaluator's chunk of individuals, stay in cache from one layer to the
    next instead of going through memory (a 2**16-float budget per individual; measured 1.3x
    faster for a small convolutional network). A call with few individuals takes larger tiles
    (:data:`TILE_POPULATION_FLOATS`); an individual's scores do not depend on the tile."""
    return max(1, TILE_FLOATS // widest_activation(spec))


def _norm_affine(tf: Any, layer: BatchNormSpec, variables: list) -> tuple[Any, Any]:
    """Inference batch normalisation as ``(inv, shift)``, each ``(P, C)``: the output is
    ``x * inv + shift``, ``inv = gamma / sqrt(variance + eps)``, ``shift = beta - mean * inv``."""
    it = iter(variables)
    gamma = next(it) if layer.scale else None
    beta = next(it) if layer.center else None
    mean, variance = next(it), next(it)
    # 1 / sqrt, both exact IEEE operations: rsqrt's vectorised and scalar forms round
    # differently, which made an individual's score depend on its place in the population.
    # Written as DivNoNan: inside a tf.function grappler's arithmetic optimizer rewrites a
    # plain ``x / sqrt(y)`` into ``x * rsqrt(y)`` (measured: then a population of 1-6 scored
    # ~1e-7 apart from the same individuals in a larger chunk). DivNoNan is left alone; its
    # 0 for a zero divisor is put back to inf, so such a network still fails as in Keras.
    root = tf.sqrt(variance + tf.constant(layer.epsilon, variance.dtype))
    inv = tf.where(tf.equal(root, 0.0), tf.constant(float("inf"), root.dtype),
                   tf.math.divide_no_nan(tf.ones_like(root), root))
    if gamma is not None:
        inv = inv * gamma
    shift = -mean * inv if beta is None else beta - mean * inv
    return inv, shift


def _pooled_tail(tf: Any, layer: Conv2DSpec, norm: tuple | None, offsets: int,
                 xla: bool = False, folded: bool = False) -> Callable:
    """``(products (P * C, O, M), [sign], [bias], [inv, shift]) -> (P * C, M)``, the vectors
    ``(P * C, 1)``: the max over the ``O`` pooling offsets, then the sign, bias, activation and
    batch normalisation steps of the pooled convolution (see ``_build_forward``).

    With ``xla``, the max, sign, bias and activation are one XLA function: a single pass over
    the products instead of one pass per TensorFlow op (these elementwise passes were two thirds
    of a small convolutional network's time; its whole fitness 1.4x faster at 256 samples,
    measured). Those steps are exact per element (a max, a sign flip, one rounded addition, a
    monotone activation), so an individual's values do not depend on how many share the call
    (tested, alone and in chunks). Batch normalisation's ``h * inv + shift`` is split between
    two XLA functions, the product ending the first and the sum starting the second: in one
    function XLA may fuse them into a multiply-add in its vector loops and not in their scalar
    remainders, whose place moves with ``P`` (measured: an individual's score then changed with
    its chunk). Without ``xla`` (the graph's fallback where XLA is unavailable), every step is
    a TensorFlow op: the same values.

    The max is a tree of ``tf.maximum`` over the offsets rather than a ``reduce_max`` over
    their axis: the same values (a max is exact), 1.7x faster under XLA (measured on the
    benchmark's conv model: a reduction over a middle axis is not vectorised as well).

    With ``folded`` (batch normalisation's scale and shift are folded into the Dense layer
    after it, see :func:`_fold_norm`), the vectors are ``[sign], [bias]`` and the tail ends
    after the activation."""
    def pooled(h, *vectors):
        it = iter(vectors)
        h = _max_of(tf, [h[:, o] for o in range(offsets)])  # (the middle axis: (P * C, O, M))
        if norm is not None:
            h = h * next(it)  # the sign
        if layer.use_bias:
            h = h + next(it)
        h = _activate(tf, h, layer.activation)
        return h * next(it) if norm is not None and not folded else h  # times batch norm's inv

    def shifted(h, shift):
        return _activate(tf, h + shift, norm[0].activation)

    def compiled(fn):
        return tf.function(fn, jit_compile=True, autograph=False) if xla else fn

    first, second = compiled(pooled), compiled(shifted)

    def pooled_tail(h, *vectors):
        if norm is None or folded:
            return first(h, *vectors)
        return second(first(h, *vectors[:-1]), vectors[-1])

    return pooled_tail


def _fold_norm(tf: Any, kernel: Any, bias: Any, inv: Any, shift: Any, several: bool,
               pop: Any) -> tuple[Any, Any]:
    """A Dense layer after ``Flatten`` of a linear batch normalisation, ``(h * inv + shift) @
    kernel + bias``, as ``h @ kernel' + bias'``: ``kernel' = inv * kernel`` (per input row) and
    ``bias' = shift @ kernel + bias``, each per individual (``kernel (P, cells * C, K)``, ``bias
    (P, K)`` or None, ``inv`` and ``shift (P, C)``, repeated over the cells as ``Flatten``
    orders them). Made once from the weights: the batch normalisation then costs no pass over
    the activations. A non-finite ``inv`` (a zero variance) gives a non-finite kernel and bias,
    so the network still fails as in Keras."""
    cells = tf.shape(kernel)[1] // tf.shape(inv)[1]
    inv, shift = tf.tile(inv, (1, cells)), tf.tile(shift, (1, cells))
    # a batched product, P >= 2 (``several``) or computed as two copies (see _matmul)
    moved = (tf.matmul(shift[:, None, :], kernel) if several else
             _matmul(tf, shift[:, None, :], kernel, pop))[:, 0, :]
    return kernel * inv[:, :, None], moved if bias is None else moved + bias


def _max_of(tf: Any, parts: list) -> Any:
    """The elementwise max of ``parts`` as a tree of ``tf.maximum`` (exact in any order)."""
    while len(parts) > 1:
        parts = [tf.maximum(a, b) for a, b in zip(parts[::2], parts[1::2])] + parts[len(parts) & ~1:]
    return parts[0]


def _matmul(tf: Any, a: Any, b: Any, pop: Any, **options: Any) -> Any:
    """``tf.matmul(a, b, **options)`` over a batch of ``pop`` individuals (``b``'s first axis,
    ``a``'s too or 1), each individual's the same bits whatever ``pop``: TensorFlow may compute
    a batch of one as a plain matrix product, with other kernels, so a population of one is
    computed as two copies of itself."""
    def twice(t):
        return tf.concat([t, t], 0) if t.shape[0] != 1 else t

    return tf.cond(pop > 1, lambda: tf.matmul(a, b, **options),
                   lambda: tf.matmul(twice(a), twice(b), **options)[:1])


def row_layout(spec: NetworkSpec) -> tuple[int, int]:
    """``(length, rows)``: how long a row of the population matrix the graph reads is (floats),
    and how many rows of the first Dense layer's width it is viewed as (0 without one).

    When the first weight layer is Dense (``I`` inputs, ``U`` units), its kernel is the first
    ``I * U`` weights of the vector, row-major, and its bias the next ``U``. A vector padded with
    zeros to ``rows * U`` floats (the least ``rows`` with ``rows * U >= n`` and a multiple of 16
    floats, 64 bytes) is then a ``(rows, U)`` matrix without a copy: the kernel's rows, the bias
    row, then the rest of the vector and the padding. The graph multiplies the input, padded
    with zeros to ``rows`` features and a one at the bias row, with that whole view: the rows
    after the bias meet zero inputs (exact zeros; ``rows / (I + 1) - 1`` extra arithmetic,
    1.4% for 784-128-10) and the population is never sliced. Other networks: ``(n, 0)``.
    """
    n = spec.layout().size
    first = _first_dense(weight_plan(spec)[0])
    if first is None:
        return n, 0
    units = first[0].units
    rows = -(-n // units)
    while (rows * units) % (ALIGN // 4):
        rows += 1
    return rows * units, rows


def _build_forward(spec: NetworkSpec) -> Callable:
    """Python function ``(matrix (P, length), x) -> logits (P, B, K)`` for tf.function.

    ``matrix`` holds one individual per row, :func:`row_layout` long (the vector, then zeros).
    With a first Dense layer, ``x`` is the flat input :meth:`BatchedGraph.prepare` made:
    ``(B, rows)`` (zero-padded, a one at the bias row) multiplied with each row viewed as
    ``(rows, units)``; or, with ``keep`` (the indices of the view rows to use), ``(B,
    len(keep))`` multiplied with those rows only (``tf.gather``). Layers before it are skipped.
    Otherwise ``x`` is ``(B, *input_shape)``, or with pooling patches (:func:`patch_layout`) the
    patches ``(taps, O, Hp * Wp, B)``, and each layer's weights are cut out of the matrix inside
    the graph (small, convolutional weights).

    With ``tail=True``, ``(h, bias, probe, classes_first)`` is returned: ``h`` the last (Dense)
    layer's outputs before its bias and activation, which the per-individual tail of
    :class:`BatchedGraph` adds, ``(P, B, K)`` (``classes_first`` False) or, after pooling
    patches, ``(P, K, B)`` (``classes_first`` True: the product computed transposed, see
    below); and its ``bias`` ``(P, K)`` (None without one, or when merged into a first layer's
    kernel). ``probe`` ``(P, units)`` (with ``probe=True``: a first Dense layer, not pruned)
    holds the first layer's pre-activations of the first sample of ``x``: that layer multiplies
    every weight of the padded row with an input of that sample (the rows after the bias meet
    zero inputs), and a product with a non-finite weight is non-finite (``0 * inf`` is NaN), as
    is any sum holding one, so a probe is finite only where the individual's whole row is (or a
    sum overflowed, which the evaluator tells apart in numpy).

    With ``xla=True``, a first convolution read as pooling patches finishes in one XLA function
    (:func:`_pooled_tail`); the fitness graph asks for it where XLA runs.

    ``memo`` (a dict) keeps the tensors made from the weights alone (kernels, batch
    normalisation's scale and shift, a batch normalisation folded into the next Dense layer,
    :func:`_fold_norm`) between calls, so that a caller running the layers tile by tile makes
    them once; ``several=True`` promises ``P >= 2`` (no batch-of-one guard per product).

    Representations: ``shared`` (B, ...) until the first weight layer; ``packed``
    (B, H, W, P*C) after a convolution (the population lives in the channel axis, so pooling and
    grouped convolution apply unchanged); ``stacked`` (P, B, U) after a Dense layer;
    ``columns`` (P, C * Hp * Wp, B) after a convolution read as pooling patches when Flatten and
    Dense follow: its product comes out population first, each individual's values (C, cells,
    samples), which that Dense layer multiplies as they lie, ``(P, U, C * cells) @ (P, C *
    cells, B)``, with its kernel's rows put in that order once (from Keras' ``(cells, C)``
    Flatten order). On the benchmarks' conv networks this is 1.1-1.4x faster (measured) than
    one product per individual, ``(O * B * cells, taps) @ (taps, C)``, then ``(P, B, features)
    @ (P, features, U)``: one product with ``P * C`` rows keeps the vector units full where an
    individual's ``C`` = 8 filters fill half of one, and the pooled features reach the Dense
    layer as they lie, with no transpose.
    """
    from deapnn.core.console import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    plan, spans = weight_plan(spec)
    first = _first_dense(plan)
    _, view_rows = row_layout(spec)
    last = len(plan) - 1
    patches = patch_layout(spec) if first is None else None

    pooled_tails: dict = {}  # (plan step, xla) -> _pooled_tail, made once

    def forward(matrix: Any, x: Any, keep: Any = None, probe: bool = False,
                tail: bool = False, xla: bool = False, memo: dict | None = None,
                several: bool = False) -> Any:
        memo = {} if memo is None else memo

        def cached(key, fn):
            """``fn()``, the tensors made from the weights only, once per ``memo``."""
            if key not in memo:
                memo[key] = fn()
            return memo[key]

        pop = cached("pop", lambda: tf.shape(matrix)[0])
        batch = tf.shape(x)[3 if patches else 0]  # (patches: (taps, O, Hp * Wp, B))

        def span(j):
            a, b, shape = spans[j]
            return cached(("span", j), lambda: tf.reshape(matrix[:, a:b], (pop, *shape)))

        h = x
        probe_out = None
        mode = "shared"
        prev_shape = tuple(spec.input_shape)
        skip: set[int] = set()  # plan steps already done (a pooling moved before its inputs)
        folds: dict = {}  # Dense plan step -> the batch normalisation folded into it
        columns = None  # (cells, C) of "columns" h, (P, C * cells, B), after pooled patches
        for i, (layer, out_shape, params, merged) in enumerate(plan):
            if i in skip or (patches and i < patches["step"]):
                continue  # (x already holds the first convolution's input patches)
            if first is not None and mode == "shared" and not isinstance(layer, DenseSpec):
                pass  # x is already the flat, padded (or pruned) input of the first Dense layer
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
                bias = None
                if mode == "shared":  # the whole rows as (rows, units): kernel, bias row, rest
                    kernel = tf.reshape(matrix, (pop, view_rows, layer.units))
                    if keep is not None:
                        kernel = tf.gather(kernel, keep, axis=1)
                    h = tf.matmul(h[None], kernel)
                    if probe:
                        probe_out = h[:, 0, :]
                elif mode == "columns":  # (P, C * cells, B): the product transposed
                    def turned():
                        """The kernel ``(P, U, C * cells)``, its rows in the order of h's
                        features (Keras' Flatten orders them ``(cells, C)``), and the bias."""
                        kernel, bias = (_fold_norm(
                            tf, span(params[0]), span(params[1]) if layer.use_bias else None,
                            *folds[i], several, pop) if i in folds else (
                            span(params[0]), span(params[1]) if layer.use_bias else None))
                        kernel = tf.reshape(kernel, (pop, *columns, layer.units))
                        return tf.transpose(kernel, (0, 3, 2, 1)), bias  # (P, U, C, cells)

                    kernel, bias = cached(("turned", i), turned)
                    h = tf.matmul(tf.reshape(kernel, (pop, layer.units, -1)), h)  # (P, U, B)
                    mode = "stacked"
                    if tail and i == last:  # the classes as rows: the tail's layout
                        return h, bias, probe_out, True
                    h = tf.transpose(h, (0, 2, 1))
                elif i in folds:
                    kernel, bias = cached(("folded", i), lambda: _fold_norm(
                        tf, span(params[0]), span(params[1]) if layer.use_bias else None,
                        *folds[i], several, pop))
                    h = tf.matmul(h, kernel)
                else:
                    h = tf.matmul(h, span(params[0]))
                    if layer.use_bias:
                        bias = span(params[1])
                mode = "stacked"
                if tail and i == last:  # bias and activation: the per-individual tail's
                    return h, bias, probe_out, False
                if bias is not None:
                    h = h + bias[:, None, :]
                if not (i == last and layer.activation == "softmax"):
                    # after the probe is read, so that the activation may overwrite h in place
                    with tf.control_dependencies([] if probe_out is None else [probe_out]):
                        h = _activate(tf, h, layer.activation)
            elif isinstance(layer, BatchNormSpec):
                # inference: x * inv + (beta - mean * inv), inv = gamma / sqrt(variance + eps),
                # each (P, C), broadcast where the representation keeps the population
                inv, shift = cached(("norm", i), lambda: _norm_affine(
                    tf, layer, [span(j) for j in params]))
                if mode == "packed":  # (B, H, W, P * C)
                    h = h * tf.reshape(inv, (-1,)) + tf.reshape(shift, (-1,))
                else:  # stacked (P, B, C)
                    h = h * inv[:, None, :] + shift[:, None, :]
                h = _activate(tf, h, layer.activation)
            elif isinstance(layer, Conv2DSpec):
                kh, kw, cin, cout = spans[params[0]][2]
                # (P, kh, kw, cin, cout) as (kh, kw, cin, P * cout)
                kernel = cached(("kernel", i), lambda: tf.reshape(tf.transpose(
                    span(params[0]), (1, 2, 3, 0, 4)), (kh, kw, cin, -1)))
                pooled = _pool_first(plan, i)
                if pooled is None:
                    h = tf.nn.conv2d(h, kernel, layer.strides, layer.padding.upper())
                    if layer.use_bias:
                        h = h + tf.reshape(span(params[1]), (-1,))
                    h = _activate(tf, h, layer.activation)
                else:
                    # conv -> bias -> activation [-> batch norm] -> max pool, with the pooling
                    # moved right after the convolution: every step between is monotone per
                    # channel, so the max of the results is the result of the max (exactly,
                    # float rounding being monotone too), or of the min where batch norm's
                    # scale is negative: those channels' kernels are negated (exact), pooled
                    # by max and negated back. The bias, activation and batch norm then run on
                    # the pooled tensor, a quarter of the size for 2x2 pooling.
                    norm, pool_layer = pooled
                    if norm is not None:
                        inv, shift = cached(("pooled norm", i), lambda: _norm_affine(
                            tf, norm[0], [span(j) for j in norm[2]]))
                        sign = cached(("sign", i), lambda: tf.reshape(
                            tf.where(inv < 0, -1.0, 1.0), (-1,)))
                        kernel = cached(("signed", i), lambda: kernel * sign)
                    if patches and i == patches["step"]:
                        # x: (O, B, Hp * Wp, taps); the max over the O offsets of the patch
                        # products is the pooled convolution (see patch_layout). One product
                        # per individual, (O * B * Hp * Wp, taps) @ (taps, filters): the same
                        # matrix shapes whatever P, so the same bits per individual
                        hp, wp, _ = patches["pooled"]
                        offsets, taps = math.prod(patches["pool"]), kh * kw * cin
                        done = max(pooled_steps(plan, i))
                        # a linear batch normalisation before Flatten and Dense: its scale and
                        # shift go into that Dense layer's kernel and bias (see _fold_norm)
                        folded = (norm is not None and norm[0].activation == "linear"
                                  and done + 2 < len(plan)
                                  and isinstance(plan[done + 1][0], FlattenSpec)
                                  and isinstance(plan[done + 2][0], DenseSpec))
                        if folded:
                            folds[done + 2] = (inv, shift)

                        def kernels():
                            """The kernels as rows, ``(P * C, taps)``, and the pooled tail's
                            vectors as a column, ``(P * C, 1)``, from the weights alone."""
                            per = tf.reshape(span(params[0]), (pop, taps, cout))
                            if norm is not None:
                                per = per * tf.reshape(sign, (pop, 1, cout))
                            rows = tf.reshape(tf.transpose(per, (0, 2, 1)), (-1, taps))
                            return rows, [tf.reshape(v, (-1, 1)) for v in (
                                [sign] if norm is not None else []) + (
                                [span(params[1])] if layer.use_bias else []) + (
                                [inv, shift] if norm is not None and not folded else [])]

                        rows, vectors = cached(("patches", i), kernels)
                        if (i, xla) not in pooled_tails:
                            pooled_tails[i, xla] = _pooled_tail(tf, layer, norm, offsets, xla,
                                                                folded)
                        # one product for the whole population, (P * C, taps) @ (taps,
                        # O * Hp * Wp * B): each value the dot product of one kernel with one
                        # patch, its taps summed in the same order whatever P. The population
                        # comes out first, each individual's values (C, cells, samples)
                        h = tf.matmul(rows, tf.reshape(h, (taps, -1)))
                        h = tf.reshape(h, (pop * cout, offsets, -1))
                        h = pooled_tails[i, xla](h, *vectors)  # (P * C, Hp * Wp * B)
                        skip.update(pooled_steps(plan, i))
                        flat = done + 1 < len(plan) and isinstance(plan[done + 1][0], FlattenSpec)
                        if flat and done + 2 < len(plan) and isinstance(plan[done + 2][0],
                                                                         DenseSpec):
                            # the Dense layer after Flatten reads the features as columns
                            h = tf.reshape(h, (pop, cout * hp * wp, batch))
                            columns = (hp * wp, cout)
                            skip.add(done + 1)
                            prev_shape, mode = plan[done + 1][1], "columns"
                            continue
                        h = tf.reshape(h, (pop, cout, hp * wp, batch))
                        if flat:  # (P, B, Hp * Wp * C), Keras' order
                            h = tf.reshape(tf.transpose(h, (0, 3, 2, 1)), (pop, batch, -1))
                            skip.add(done + 1)
                            prev_shape, mode = plan[done + 1][1], "stacked"
                        else:  # packed, for the layers after: (B, Hp, Wp, P * C)
                            h = tf.reshape(tf.transpose(h, (3, 2, 0, 1)), (batch, hp, wp, -1))
                            prev_shape, mode = plan[done][1], "packed"
                        continue
                    else:
                        h = tf.nn.conv2d(h, kernel, layer.strides, layer.padding.upper())
                        pool_strides = pool_layer.strides or pool_layer.pool_size
                        h = tf.nn.max_pool2d(h, pool_layer.pool_size, pool_strides,
                                             pool_layer.padding.upper())
                    if norm is not None:
                        h = h * sign
                    if layer.use_bias:
                        h = h + tf.reshape(span(params[1]), (-1,))
                    h = _activate(tf, h, layer.activation)
                    if norm is not None:
                        h = h * tf.reshape(inv, (-1,)) + tf.reshape(shift, (-1,))
                        h = _activate(tf, h, norm[0].activation)
                    skip.update(pooled_steps(plan, i))
                    out_shape = plan[max(pooled_steps(plan, i))][1]
                mode = "packed"
            prev_shape = out_shape
        return h

    forward.patches = patches
    return forward


class BatchedGraph:
    """Compiled tf.functions for one spec (one per process).

    They take the population as one ``(P, length)`` float32 matrix, :func:`row_layout` long
    rows (each individual's vector, then zeros): the population buffer itself, read in place,
    or a copy of it (``BatchedEvaluator._padded``); and the samples as :meth:`prepare` makes
    them. The signatures leave ``P`` and the number of samples free, so each function is traced
    once.

    The layers are batched over the population (:func:`_build_forward`); the last layer's bias
    and activation and the head (softmax cross-entropy, accuracy, finiteness) run per
    individual, ``tf.map_fn`` over the population inside one XLA cluster: XLA fuses the head's
    dozen elementwise ops into one pass over data that stays in cache (3x less time than the
    same ops batched in plain TensorFlow, measured), and since the loop body is compiled for
    one individual, an individual's scores do not depend on how many share the call (a
    population scored in other chunks, by SCOOP workers, scores the same to the bit). Where XLA
    is unavailable or fails, the first call falls back to the same tail vectorised over the
    population in plain TensorFlow (``fused=False`` forces that): the same scores up to float
    rounding, also independent of the chunking.

    Args:
        spec: The network.
        prune: Leave inputs that are zero in every sample out of a first Dense layer.
        fused: Run the tail under XLA (default), falling back to plain TensorFlow.
    """

    def __init__(self, spec: NetworkSpec, prune: bool = False, fused: bool = True):
        from deapnn.core.console import import_tensorflow

        import_tensorflow()
        import tensorflow as tf

        self.spec = spec
        plan, self.spans = weight_plan(spec)
        first = _first_dense(plan)
        #: whether :meth:`fitness` takes pruned inputs (``keep``); see :meth:`prepare`
        self.pruned = bool(prune) and first is not None
        #: the rows' length (floats) and the first Dense layer's view rows (see row_layout)
        self.length, self.view_rows = row_layout(spec)
        self.flat_input = first is not None
        self.merged = first is not None and first[3]
        kernel_shape = self.spans[first[2][0]][2] if first is not None else None
        #: input features of a first Dense layer (its bias row, when merged, is the next row)
        self.features = (kernel_shape[0] - int(self.merged)) if first is not None else None
        # with a first Dense layer and no pruning, the first sample's pre-activations check
        # every weight (see _build_forward)
        self.probe = first is not None and not self.pruned
        forward = _build_forward(spec)
        #: the first convolution's input patches (:func:`patch_layout`), or None
        self.patches = forward.patches
        #: samples per tile of the layers at least (:func:`tile_samples`); None with a first
        #: Dense layer
        self.tile = None if self.flat_input else tile_samples(spec)
        out_layer = spec.layers[-1]
        self.softmax_output = out_layer.activation == "softmax"
        m_spec = tf.TensorSpec([None, self.length], tf.float32)
        if self.flat_input:
            x_spec = tf.TensorSpec([None, None], tf.float32)
        elif self.patches:
            (ph, pw), (kh, kw) = self.patches["pool"], self.patches["kernel"]
            hp, wp, _ = self.patches["pooled"]
            x_spec = tf.TensorSpec([kh * kw * self.patches["input"][2], ph * pw, hp * wp, None],
                                   tf.float32)
        else:
            x_spec = tf.TensorSpec([None, *spec.input_shape], tf.float32)
        y_spec = tf.TensorSpec([None], tf.int32)
        keep_spec = tf.TensorSpec([None], tf.int32)
        n_classes = spec.n_outputs
        probe = self.probe

        def one(h, bias, y, has_bias, classes_first):
            """``[cross-entropy, accuracy, finite]`` of one individual from ``h``, its last
            layer's outputs before bias and activation, ``(K, B)`` (``classes_first``) or
            ``(B, K)``.

            The classes are made the rows (a transpose in cache), so that the reductions over
            the classes run across rows: XLA vectorises them over the samples (1.4-1.7x faster
            than over a 10-wide last axis, measured)."""
            if not classes_first:
                h = tf.transpose(h)
            if has_bias:
                h = h + bias[:, None]
            if out_layer.activation != "softmax":
                h = _activate(tf, h, out_layer.activation)  # elementwise: any layout
            logits = h  # a softmax head's pre-activations; other heads' outputs are read as logits
            # softmax cross-entropy, log(sum(exp(l - max))) - (l_y - max), as
            # tf.nn.sparse_softmax_cross_entropy_with_logits computes it
            z = logits - tf.reduce_max(logits, axis=0)
            log_sum = tf.math.log(tf.reduce_sum(tf.exp(z), axis=0))
            # z * one_hot is NaN wherever a logit is +-inf or NaN (inf * 0), so ce is finite
            # exactly where the sample's logits all are
            true = tf.reduce_sum(z * tf.one_hot(y, n_classes, axis=0, dtype=z.dtype), axis=0)
            ce = log_sum - true
            correct = tf.cast(tf.equal(tf.argmax(logits, axis=0, output_type=tf.int32), y),
                              tf.float32)
            finite = tf.cast(tf.reduce_all(tf.math.is_finite(ce)), tf.float32)
            return tf.stack([tf.reduce_mean(ce), tf.reduce_mean(correct), finite])

        def make_tail(xla: bool, has_bias: bool, classes_first: bool):
            def per_individual(args, y):
                return one(args[0], args[1], y, has_bias, classes_first)

            if xla:
                def tail(h, bias, y):
                    return tf.map_fn(lambda a: per_individual(a, y), (h, bias),
                                     fn_output_signature=tf.TensorSpec([3], tf.float32))

                return tf.function(tail, jit_compile=True, autograph=False)
            return lambda h, bias, y: tf.vectorized_map(lambda a: per_individual(a, y), (h, bias))

        tails: dict = {}

        least = self.tile
        widest = widest_activation(spec)
        sample_axis = 3 if self.patches else 0

        def tiled(matrix, x, xla):
            """The layers tile by tile of samples (:func:`tile_samples`): ``(h (P, K, B),
            bias, None, True)`` as ``forward(..., tail=True)`` returns.

            What the layers make of the weights alone (kernels cut out and reshaped, batch
            normalisation's scale and shift) is made once, before the loop, by a first
            ``forward`` on one sample whose data ops TensorFlow prunes (their result is not
            used); each tile reuses those tensors (``memo``), so a tile runs only the ops on
            its samples. A population of one runs as two copies of itself (TensorFlow may
            compute a batch of one with other kernels), decided once here rather than in
            every tile (``several``).

            A tile holds :func:`tile_samples` samples, or more when the population is small:
            as many as keep its widest activation, ``(P, tile, widest)``, at
            :data:`TILE_POPULATION_FLOATS`, so that a call for a few individuals (a
            generation's re-scored survivors) runs in a few tiles, not one per dozen samples
            (5 individuals on 256 images: 1.4x faster, measured). An individual's values do
            not depend on the tile (its products do not mix samples; tested from 1 sample
            per tile to the whole minibatch), so its bits do not depend on ``P``."""
            pop = tf.shape(matrix)[0]
            matrix = tf.cond(pop > 1, lambda: matrix, lambda: tf.concat([matrix, matrix], 0))
            tile = tf.maximum(least, TILE_POPULATION_FLOATS // (tf.shape(matrix)[0] * widest))
            batch = tf.shape(x)[sample_axis]
            count = batch // tile  # full tiles; the rest, if any, after the loop
            parts = tf.TensorArray(matrix.dtype, size=count, element_shape=None)
            memo: dict = {}
            # (the last layer's bias too, which may hold a folded batch normalisation)
            _, bias, _, _ = forward(matrix, x[..., :1] if sample_axis else x[:1], tail=True,
                                    xla=xla, memo=memo, several=True)

            def samples(a, b):
                return x[..., a:b] if sample_axis else x[a:b]

            def classes_first(h, first):  # (P, K, samples)
                return h if first else tf.transpose(h, (0, 2, 1))

            def step(i, parts):
                h, _, _, first = forward(matrix, samples(i * tile, (i + 1) * tile), tail=True,
                                         xla=xla, memo=memo, several=True)
                return i + 1, parts.write(i, h)  # (P, tile, K) or (P, K, tile)

            _, parts = tf.while_loop(lambda i, _: i < count, step, (0, parts))
            rest, _, _, first = forward(matrix, samples(count * tile, batch), tail=True, xla=xla,
                                        memo=memo, several=True)
            rest = classes_first(rest, first)

            def stacked():
                """The full tiles, (count, P, ...), as (P, K, count * tile): one transpose per
                call instead of one per tile."""
                full = tf.transpose(parts.stack(), (1, 2, 0, 3) if first else (1, 3, 0, 2))
                return tf.reshape(full, (tf.shape(full)[0], tf.shape(full)[1], -1))

            full = tf.cond(count > 0, stacked, lambda: rest[:, :, :0])
            h = tf.concat([full, rest], axis=2)[:pop]
            return h, None if bias is None else bias[:pop], None, True

        def body(xla, matrix, x, y, keep):
            if least is not None:
                h, bias, probe_out, classes_first = tiled(matrix, x, xla)
            else:
                h, bias, probe_out, classes_first = forward(matrix, x, keep=keep, probe=probe,
                                                            tail=True)
            key = (xla, bias is not None, classes_first)
            if key not in tails:
                tails[key] = make_tail(*key)
            if bias is None:
                bias = tf.zeros((tf.shape(matrix)[0], 1), matrix.dtype)
            if xla:  # two halves, two independent XLA loops: TensorFlow runs them on two cores
                half = tf.shape(h)[0] // 2
                # every loop runs at least twice: XLA compiles a loop of one iteration into
                # other code, whose rounding differs (measured), so one individual is scored
                # as two copies of itself
                scores = tf.case([
                    (half > 1, lambda: tf.concat([tails[key](h[:half], bias[:half], y),
                                                  tails[key](h[half:], bias[half:], y)], 0)),
                    (half > 0, lambda: tails[key](h, bias, y))],
                    default=lambda: tails[key](tf.concat([h, h], 0), tf.concat([bias, bias], 0),
                                               y)[:1])
            else:
                scores = tails[key](h, bias, y)
            if probe:  # the first sample's first-layer pre-activations (see _build_forward)
                ok = tf.reduce_all(tf.math.is_finite(probe_out), axis=1)
            else:  # one pass over the weights: a sum is non-finite when one of them is
                ok = tf.math.is_finite(tf.reduce_sum(matrix, axis=1))
            # (a sum of finite weights can overflow: the evaluator confirms flags in numpy)
            return scores[:, 0], scores[:, 1], scores[:, 2] > 0.5, ok

        def make_fitness(xla):
            """``(matrix, x, y[, keep]) -> (ce, acc, finite outputs, finite weights)``."""
            if not self.pruned:
                @tf.function(autograph=False, input_signature=[m_spec, x_spec, y_spec])
                def fitness(matrix, x, y):
                    return body(xla, matrix, x, y, None)

                return fitness

            @tf.function(autograph=False, input_signature=[m_spec, x_spec, y_spec, keep_spec])
            def pruned_fitness(matrix, x, y, keep):
                # a non-finite weight on a dropped input would make Keras' output NaN (0 * inf):
                # the weights' own check catches it
                return body(xla, matrix, x, y, keep)

            return pruned_fitness

        self._fitness_fused = make_fitness(True)
        self._fitness_plain = make_fitness(False)
        self._fused: bool | None = None if fused else False
        self._concrete: dict = {}  # fused -> (tf.function, its concrete function)
        self._errors = (tf.errors.OpError, NotImplementedError)

        @tf.function(autograph=False, input_signature=[m_spec, x_spec])
        def predict(matrix, x):
            out = forward(matrix, x)
            return tf.nn.softmax(out, axis=-1) if self.softmax_output else out

        self.predict = predict
        self.tensor = zero_copy_converter(tf)
        self.constant = tf.constant
        self.gather_patches = None
        if self.patches:
            index = tf.constant(patch_indices(self.patches))

            def gather(x):
                """Flat samples ``(B, h * w * cin)`` as :func:`pooling_patches`' patches,
                samples last: ``(taps, O, Hp * Wp, B)``."""
                x = tf.concat([x, tf.zeros((tf.shape(x)[0], 1), x.dtype)], axis=1)
                return tf.transpose(tf.gather(x, index, axis=1), (3, 1, 2, 0))

            signature = [tf.TensorSpec([None, None], tf.float32)]
            # under XLA 2.8x faster than TensorFlow's gather (256 MNIST images, 5x5 kernels);
            # TensorFlow's where XLA fails (the same values: a gather copies)
            forms = [tf.function(gather, autograph=False, jit_compile=True,
                                 input_signature=signature),
                     tf.function(gather, autograph=False, input_signature=signature)]

            def gather_patches(x):
                while True:
                    try:
                        return forms[0](x)
                    except self._errors:
                        if len(forms) == 1:
                            raise
                        forms.pop(0)

            self.gather_patches = gather_patches

    def fitness(self, matrix: Any, x: Any, y: Any, keep: Any = None) -> tuple[Any, Any, Any, Any]:
        """``(cross-entropy (P,), accuracy (P,), finite outputs (P,), finite weights (P,))``.

        ``matrix`` is the ``(P, length)`` population (a tensor); ``x``, ``y`` and ``keep`` come
        from :meth:`prepare`.
        """
        args = (matrix, x, y, keep) if self.pruned else (matrix, x, y)
        if self._fused is None:
            try:
                out = self._call(True, args)
                self._fused = True
                return out
            except self._errors:
                self._fused = False
        return self._call(self._fused, args)

    def _call(self, fused: bool, args: tuple) -> Any:
        """Calls the fused or plain fitness function through its concrete function (traced
        once, on first use): that skips tf.function's argument binding, 0.1-0.2 ms a call."""
        fn = self._fitness_fused if fused else self._fitness_plain
        cached = self._concrete.get(fused)
        if cached is None or cached[0] is not fn:
            trace = getattr(fn, "get_concrete_function", None)
            cached = self._concrete[fused] = (fn, fn if trace is None else trace())
        return cached[1](*args)

    def inputs(self, x: numpy.ndarray) -> Any:
        """Samples ``x`` as the graph's input tensor: with a first Dense layer, flat and padded
        with zeros to :attr:`view_rows` features, a one at the bias row; with :attr:`patches`,
        the first convolution's input patches (:func:`pooling_patches`' values, gathered in
        TensorFlow, :attr:`gather_patches`); otherwise ``x`` itself.

        Raises:
            ValueError: If a sample of ``x`` does not hold the network's input size (the shapes
                named): the patch gather would otherwise read the wrong pixels silently.
        """
        self.check_samples(x)
        if self.patches:
            return self.gather_patches(self.constant(numpy.reshape(x, (x.shape[0], -1))))
        if not self.flat_input:
            return self.constant(x)
        n = x.shape[0]
        out = numpy.zeros((n, self.view_rows), numpy.float32)
        out[:, : self.features] = x.reshape(n, -1)
        if self.merged:
            out[:, self.features] = 1.0
        return self.constant(out)

    def check_samples(self, x: Any) -> None:
        """Raise a ValueError naming the shapes unless each sample of ``x`` holds as many values
        as the network's input, ``spec.input_shape``."""
        shape = tuple(self.spec.input_shape)
        if numpy.ndim(x) < 1 or math.prod(numpy.shape(x)[1:]) != math.prod(shape):
            raise ValueError(f"samples of shape {tuple(numpy.shape(x))[1:]} do not fit the "
                             f"network's input shape {shape}")

    def prepare(self, x: numpy.ndarray, y: numpy.ndarray,
                chunk: int = 2048) -> tuple[list[tuple[Any, Any, int]], Any]:
        """Samples as TensorFlow inputs of :meth:`fitness`: ``([(x, y, count) per chunk], keep)``.

        With a first Dense layer, ``x`` is flat; when :attr:`pruned`, input features that are
        zero in every sample are dropped (``keep`` lists the others, then the bias row of a
        merged first layer): their products with the kernel are exact zeros, so the scores are
        unchanged up to float summation order while the first layer does less work (MNIST
        minibatches of 256 images leave out about 29% of the pixels); otherwise it is
        :meth:`inputs`. ``keep`` is None unless pruned.
        """
        self.check_samples(x)
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
                columns = numpy.append(columns, self.features)
            keep = self.constant(columns.astype(numpy.int32))
        chunks = []
        for s in range(0, n, chunk):
            xs, ys = x[s : s + chunk], y[s : s + chunk]
            # (pruned inputs are already the first layer's, without the bias row's padding)
            xs = self.constant(xs) if self.pruned else self.inputs(xs)
            chunks.append((xs, self.constant(ys), len(y[s : s + chunk])))
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
