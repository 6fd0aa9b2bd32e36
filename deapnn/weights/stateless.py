"""Any Keras 3 model, batched over a population: ``model.stateless_call`` under ``vectorized_map``.

:class:`StatelessGraph` evaluates a whole population of flat weight vectors with the model's own
layers: one ``tf.function`` slices the ``(P, n)`` weight matrix into per-variable tensors
``(P, *shape)`` (in :class:`~deapnn.weights.codec.WeightLayout` order), and ``tf.vectorized_map``
runs ``model.stateless_call(trainable, non_trainable, x, training=False)`` for every individual
at once. So Functional models, Sequential models, convolutions, pooling, batch normalisation (in
inference mode: its moving statistics are read, never updated) and dropout (off) need no
whitelist. Ops that ``vectorized_map`` cannot vectorise (e.g. a convolution whose filter differs
per individual) run as a loop over the population inside the same graph, still far faster than
one Keras call per individual.

Which variables come from the vector: every variable of ``model.weights`` (the layout of
:meth:`WeightLayout.from_model` with ``trainable_only=False``, the order of
``model.get_weights()``), trainable or not: a batch normalisation layer's ``moving_mean`` and
``moving_variance`` are genes like its ``gamma`` and ``beta``. Variables outside
``model.weights`` (the state of dropout's seed generators) keep the model's values.

Output rule (the same on every path of :class:`~deapnn.weights.evaluator.BatchedEvaluator`): a
softmax-activated output layer is read through its logits (the pre-softmax activations; the
softmax is applied only by ``predict``); any other output is read as logits, like
``from_logits=True``.

TensorFlow is imported only when a graph is built.
"""

from __future__ import annotations

from typing import Any

from deapnn.weights.codec import WeightLayout

__all__ = ["StatelessGraph", "softmax_head", "model_logits_copy"]


def softmax_head(model: Any) -> str | None:
    """How the model's output layer applies softmax: ``"activation"`` (a layer whose
    ``activation`` is softmax: Dense, Conv, Activation), ``"layer"`` (a ``Softmax`` layer), or
    None (the output is read as logits)."""
    outputs = getattr(model, "outputs", None) or []
    layer = model.layers[-1] if model.layers else None
    if len(outputs) == 1:
        history = getattr(outputs[0], "_keras_history", None)
        if history is not None:
            layer = history[0]
    if layer is None:
        return None
    activation = getattr(layer, "activation", None)
    if getattr(activation, "__name__", None) == "softmax":
        return "activation"
    if type(layer).__name__ == "Softmax":
        return "layer"
    return None


def model_logits_copy(config: str, weights: list | None = None) -> tuple[Any, str | None]:
    """A new Keras model from JSON ``config`` whose output is logits, and its :func:`softmax_head`.

    A softmax output *activation* is switched to linear on the copy (the user's model is not
    touched), so the copy returns the pre-softmax logits; a ``Softmax`` layer stays (the caller
    takes the log of its probabilities).
    """
    from deapnn.core.console import import_tensorflow

    import_tensorflow()
    import keras

    model = keras.models.model_from_json(config)
    if weights is not None:
        model.set_weights(weights)
    head = softmax_head(model)
    if head == "activation":
        layer = model.layers[-1]
        history = getattr(model.outputs[0], "_keras_history", None) if model.outputs else None
        if history is not None:
            layer = history[0]
        layer.activation = keras.activations.linear
    return model, head


class StatelessGraph:
    """Compiled population forward pass of one Keras model (one per process).

    Args:
        config: The model's JSON config (``model.to_json()``).
        layout: The :class:`WeightLayout` of the flat vectors (``WeightLayout.from_model(model)``).
        weights: The model's current ``get_weights()`` (for variables outside the layout).

    Attributes:
        fitness: ``tf.function (matrix (P, n), x (B, ...), y (B,)) -> (cross-entropy (P,),
            accuracy (P,), finite outputs (P,), finite weights (P,))``.
        predict: ``tf.function (matrix, x) -> (P, B, K)``: softmax probabilities for a softmax
            head, the raw outputs otherwise.
    """

    def __init__(self, config: str, layout: WeightLayout, weights: list | None = None):
        from deapnn.core.console import import_tensorflow

        import_tensorflow()
        import tensorflow as tf

        model, self.head = model_logits_copy(config, weights)
        self.model = model
        variables = model.weights
        if tuple(tuple(int(d) for d in v.shape) for v in variables) != layout.shapes:
            raise ValueError(
                f"the model's weights have shapes {[tuple(v.shape) for v in variables]}, the "
                f"layout {list(layout.shapes)}")
        position = {id(v): i for i, v in enumerate(variables)}
        # per stateless_call argument: the layout index, or the variable itself (kept as is)
        self._trainable = [position.get(id(v), v) for v in model.trainable_variables]
        self._non_trainable = [position.get(id(v), v) for v in model.non_trainable_variables]
        offsets, sizes, shapes = layout.offsets, layout.sizes, layout.shapes
        n = layout.size
        head = self.head

        def logits_of(matrix, x):
            parts = tuple(tf.reshape(matrix[:, o : o + s], (-1, *shape))
                          for o, s, shape in zip(offsets, sizes, shapes))

            def one(params):
                pick = lambda refs: [params[r] if isinstance(r, int) else r.value for r in refs]
                out, _ = model.stateless_call(pick(self._trainable), pick(self._non_trainable), x,
                                              training=False)
                return out

            out = tf.vectorized_map(one, parts)
            if head == "layer":  # probabilities: their log is a logit vector
                out = tf.math.log(tf.maximum(out, tf.constant(1e-30, out.dtype)))
            return tf.cast(tf.reshape(out, (tf.shape(matrix)[0], tf.shape(x)[0], -1)), tf.float32)

        w_spec = tf.TensorSpec([None, n], tf.float32)
        x_spec = tf.TensorSpec([None, *[int(d) for d in model.input_shape[1:]]], tf.float32)

        @tf.function(autograph=False, input_signature=[w_spec, x_spec, tf.TensorSpec([None], tf.int32)])
        def fitness(matrix, x, y):
            logits = logits_of(matrix, x)  # (P, B, K)
            finite = tf.reduce_all(tf.math.is_finite(logits), axis=[1, 2])
            log_probs = tf.nn.log_softmax(logits, axis=-1)
            one_hot = tf.one_hot(y, tf.shape(logits)[2], dtype=logits.dtype)  # (B, K)
            true = tf.reduce_sum(log_probs * one_hot[None], axis=2)  # (P, B)
            correct = tf.cast(tf.equal(tf.argmax(logits, axis=2, output_type=tf.int32), y[None]),
                              tf.float32)
            # non-finite when a weight is (or when finite weights overflow the sum: the
            # evaluator confirms flagged individuals exactly)
            finite_w = tf.math.is_finite(tf.reduce_sum(matrix, axis=1))
            return -tf.reduce_mean(true, axis=1), tf.reduce_mean(correct, axis=1), finite, finite_w

        @tf.function(autograph=False, input_signature=[w_spec, x_spec])
        def predict(matrix, x):
            out = logits_of(matrix, x)
            return tf.nn.softmax(out, axis=-1) if head is not None else out

        self.fitness = fitness
        self.predict = predict
        self.n_outputs = int(model.output_shape[-1])

