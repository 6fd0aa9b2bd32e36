"""Keras networks built from hyperparameter genomes.

The search spaces are plain :class:`~deapnn.hparams.space.SearchSpace` objects, defined without
TensorFlow; Keras is imported lazily inside the builders, so importing this module is cheap and
safe in any process.

* :func:`mlp_space` / :data:`MLP_SPACE` - NaturalSelection's 15 hyperparameters (optimizer,
  initializer, hidden activation, batch size, input dropout, neurons and dropout of 5 hidden
  layers, where 0 neurons means "no layer") plus learning rate, ``use_bias`` and batch
  normalisation. Built by :func:`build_mlp`.
* :func:`cnn_space` / :data:`CNN_SPACE` - DeepEvolve-style convolutional networks, extended:
  number of conv blocks and convolutions per block, filters, kernel size, pooling, batch
  normalisation, block and head dropout, a dense head, optimizer, learning rate and batch size.
  Built by :func:`build_cnn`.

Any ``build_model(genome, input_shape, n_classes) -> keras.Model`` works with
:class:`deapnn.keras.evaluator.KerasEvaluator`; :func:`build_mlp` and :func:`build_cnn` are two of them.
Builders return uncompiled models; the evaluator compiles them with :func:`make_optimizer`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deapnn.hparams.space import Choice, FloatRange, SearchSpace

__all__ = [
    "CNN_SPACE",
    "MLP_SPACE",
    "build_cnn",
    "build_mlp",
    "genome_values",
    "hidden_layers",
    "make_optimizer",
    "LR_SCHEDULES",
    "mlp_canonical",
    "cnn_space",
    "mlp_space",
]

OPTIMIZERS = ("adam", "adamax", "nadam")
INITIALIZERS = ("lecun_uniform", "lecun_normal", "glorot_uniform", "glorot_normal",
                "he_uniform", "he_normal")
ACTIVATIONS = ("relu", "elu")
BATCH_SIZES = (16, 32, 64)
NEURONS = (0, 16, 32, 64, 128, 256, 512, 1024)
DROPOUTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)

GeneSpec = Any  # a Choice / IntRange / FloatRange, a list of choices, or a (low, high) log range


def _keras():
    from deapnn.core.console import import_tensorflow

    import_tensorflow()  # quiet unless --verbose / DEAPNN_VERBOSE=1
    import keras

    return keras


def _gene(spec: GeneSpec, log: bool = False):
    """A gene object from a gene, a list/tuple of choices, or (``log``) a ``(low, high)`` range."""
    if log and isinstance(spec, tuple) and len(spec) == 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in spec):
        return FloatRange(float(spec[0]), float(spec[1]), log=True)
    if isinstance(spec, (list, tuple)):
        return Choice(list(spec))
    return spec


def genome_values(genome: Any) -> dict[str, Any]:
    """A genome's values as ``{gene name: value}``: a deapnn genome or a plain mapping."""
    if hasattr(genome, "as_dict"):
        return genome.as_dict()
    if isinstance(genome, Mapping):
        return dict(genome)
    raise TypeError(f"expected a deapnn genome or a dict of gene values, got {genome!r}")


# ------------------------------------------------------------------------------------------- MLP
def _slots(values: Mapping[str, Any]) -> list[int]:
    return sorted(int(name[7:]) for name in values
                  if name.startswith("neurons") and name[7:].isdigit())


def hidden_layers(genome: Any) -> list[tuple[int, float]]:
    """The ``(neurons, dropout)`` of the hidden layers an MLP genome builds, in order.

    Slots with 0 neurons are skipped, so ``[256, 0, 128]`` gives two layers.
    """
    values = genome_values(genome)
    return [(int(values[f"neurons{i}"]), float(values.get(f"dropout{i}", 0.0)))
            for i in _slots(values) if values[f"neurons{i}"]]


def mlp_canonical(values: dict[str, Any]) -> dict[str, Any]:
    """Maps MLP genomes that build the same network to one canonical form.

    Present layers move to the front slots in order (``[256, 0, 128]`` and ``[256, 128, 0]``
    build the same network); absent slots get 0 neurons and 0.0 dropout. When no hidden layer is
    present, the genes only hidden layers use (``activation``, ``use_bias``, ``batch_norm``) are
    set to ``None``: they do not change the network. (The result is a key, not necessarily a
    valid genome: ``None`` is outside those genes.)

    Args:
        values: ``{gene name: value}`` of an MLP genome.

    Returns:
        The canonical ``{gene name: value}``.
    """
    out = dict(values)
    slots = _slots(out)
    layers = hidden_layers(out)
    for j, i in enumerate(slots):
        neurons, dropout = layers[j] if j < len(layers) else (0, 0.0)
        out[f"neurons{i}"] = neurons
        if f"dropout{i}" in out:
            out[f"dropout{i}"] = dropout
    if not layers:
        for name in ("activation", "use_bias", "batch_norm"):
            if name in out:
                out[name] = None
    return out


def mlp_space(*, layers: int = 5, neurons: GeneSpec = NEURONS, dropout: GeneSpec = DROPOUTS,
              input_dropout: GeneSpec = DROPOUTS, optimizer: GeneSpec = OPTIMIZERS,
              learning_rate: GeneSpec = (1e-4, 1e-2), initializer: GeneSpec = INITIALIZERS,
              activation: GeneSpec = ACTIVATIONS, batch_size: GeneSpec = BATCH_SIZES,
              use_bias: GeneSpec = (True, False),
              batch_norm: GeneSpec = (False, True)) -> SearchSpace:
    """The MLP search space; the defaults are NaturalSelection's 15 genes plus three.

    Every argument but ``layers`` is a gene: a list/tuple of choices, a ``(low, high)`` pair of
    numbers for ``learning_rate`` (a log-uniform range), or a gene object. Gene order keeps each
    layer's ``neurons{i}`` next to its ``dropout{i}``, so one-point crossover moves whole layers.

    Args:
        layers: number of hidden-layer slots (``neurons0..``, ``dropout0..``).
        neurons: units per hidden layer; 0 means "no layer".
        dropout: dropout rate after each hidden layer.
        input_dropout: dropout rate on the inputs.
        optimizer: Keras optimizer names.
        learning_rate: the optimizer's learning rate.
        initializer: Keras kernel initializer names.
        activation: hidden-layer activation names.
        batch_size: training batch sizes.
        use_bias: whether hidden layers have a bias.
        batch_norm: whether a batch normalisation follows each hidden ``Dense``.

    Returns:
        A space with canonical function :func:`mlp_canonical`.
    """
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        raise ValueError(f"layers must be a positive int, got {layers!r}")
    genes: list[tuple[str, Any]] = [
        ("optimizer", _gene(optimizer)),
        ("learning_rate", _gene(learning_rate, log=True)),
        ("initializer", _gene(initializer)),
        ("activation", _gene(activation)),
        ("batch_size", _gene(batch_size)),
        ("use_bias", _gene(use_bias)),
        ("batch_norm", _gene(batch_norm)),
        ("input_dropout", _gene(input_dropout)),
    ]
    for i in range(layers):
        genes += [(f"neurons{i}", _gene(neurons)), (f"dropout{i}", _gene(dropout))]
    return SearchSpace(genes, canonical=mlp_canonical)


#: NaturalSelection's default space plus learning rate, ``use_bias`` and batch normalisation.
MLP_SPACE = mlp_space()


def build_mlp(genome: Any, input_shape: Sequence[int], n_classes: int) -> Any:
    """Builds the (uncompiled) Keras MLP an MLP genome describes.

    Flatten, input dropout, then for every slot with neurons > 0: ``Dense`` (named
    ``hidden{i}``), batch normalisation if ``batch_norm``, the activation and the slot's dropout;
    then a softmax ``Dense`` named ``output``. With no hidden layer this is multinomial logistic
    regression (a linear softmax model) - still a network, and still trainable. Missing genes
    take Keras defaults (glorot_uniform, relu, bias, no batch norm, no dropout).

    Args:
        genome: a genome of :func:`mlp_space` (or a dict of its values).
        input_shape: shape of one example.
        n_classes: number of output classes.

    Returns:
        A ``keras.Model``. Its weights come from Keras's seeded initialisers.
    """
    keras = _keras()
    layers = keras.layers
    values = genome_values(genome)
    init = values.get("initializer") or "glorot_uniform"
    activation = values.get("activation") or "relu"
    use_bias = values.get("use_bias")
    use_bias = True if use_bias is None else bool(use_bias)
    batch_norm = bool(values.get("batch_norm") or False)

    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = layers.Flatten(name="flatten")(inputs)
    if values.get("input_dropout"):
        x = layers.Dropout(float(values["input_dropout"]), name="input_dropout")(x)
    for i in _slots(values):
        units = int(values[f"neurons{i}"])
        if not units:
            continue
        x = layers.Dense(units, use_bias=use_bias, kernel_initializer=init, name=f"hidden{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"batch_norm{i}")(x)
        x = layers.Activation(activation, name=f"activation{i}")(x)
        rate = float(values.get(f"dropout{i}") or 0.0)
        if rate:
            x = layers.Dropout(rate, name=f"dropout{i}")(x)
    outputs = layers.Dense(n_classes, activation="softmax", kernel_initializer=init,
                           name="output")(x)
    return keras.Model(inputs, outputs, name="mlp")


# ------------------------------------------------------------------------------------------- CNN
def cnn_space(*, conv_blocks: GeneSpec = (1, 2, 3), convs_per_block: GeneSpec = (1, 2),
              filters: GeneSpec = (8, 16, 32, 64), kernel_size: GeneSpec = (3, 5),
              pooling: GeneSpec = ("max", "avg", "none"), batch_norm: GeneSpec = (False, True),
              activation: GeneSpec = ("relu", "elu", "tanh"),
              conv_dropout: GeneSpec = (0.0, 0.1, 0.2, 0.3),
              dense: GeneSpec = (0, 32, 64, 128, 256), dropout: GeneSpec = DROPOUTS,
              optimizer: GeneSpec = OPTIMIZERS, learning_rate: GeneSpec = (1e-4, 1e-2),
              batch_size: GeneSpec = BATCH_SIZES) -> SearchSpace:
    """The CNN search space: DeepEvolve's convolutional genome, extended.

    Arguments are genes, as in :func:`mlp_space`; pass one-element lists to fix a gene. Gene
    order keeps the convolutional genes together, then the head, then training, so one-point
    crossover tends to swap whole parts.

    Args:
        conv_blocks: number of conv blocks (each: convolutions, then optional pooling and
            dropout).
        convs_per_block: ``Conv2D`` layers per block (2 is a VGG-style block).
        filters: filters of the first block; each further block doubles them.
        kernel_size: square kernel size of every convolution.
        pooling: ``"max"``, ``"avg"`` (2x2, while the image is at least 2x2) or ``"none"``.
        batch_norm: a batch normalisation between each convolution (then without bias) and its
            activation, and in the dense head.
        activation: activation of convolutions and the dense head.
        conv_dropout: dropout rate after each block.
        dense: units of the dense head before the output; 0 means none.
        dropout: dropout rate before the output layer.
        optimizer: Keras optimizer names.
        learning_rate: the optimizer's learning rate (log-uniform).
        batch_size: training batch sizes.

    Returns:
        The space (no canonical function: every genome builds a different network).
    """
    return SearchSpace([
        ("conv_blocks", _gene(conv_blocks)),
        ("convs_per_block", _gene(convs_per_block)),
        ("filters", _gene(filters)),
        ("kernel_size", _gene(kernel_size)),
        ("pooling", _gene(pooling)),
        ("batch_norm", _gene(batch_norm)),
        ("activation", _gene(activation)),
        ("conv_dropout", _gene(conv_dropout)),
        ("dense", _gene(dense)),
        ("dropout", _gene(dropout)),
        ("optimizer", _gene(optimizer)),
        ("learning_rate", _gene(learning_rate, log=True)),
        ("batch_size", _gene(batch_size)),
    ])


#: DeepEvolve-style CNN space, extended (blocks, convolutions per block, filters, kernel size,
#: pooling, batch normalisation, dropout, dense head, optimizer, learning rate, batch size).
CNN_SPACE = cnn_space()


def build_cnn(genome: Any, input_shape: Sequence[int], n_classes: int) -> Any:
    """Builds the (uncompiled) Keras CNN a :func:`cnn_space` genome describes.

    Grey images of shape ``(h, w)`` get a channel axis. Block ``b`` has ``convs_per_block``
    ``same``-padded ``Conv2D`` layers (named ``conv{b}`` and ``conv{b}_{j}`` for the further
    ones) with ``filters * 2**b`` filters, each followed by batch normalisation (if
    ``batch_norm``; the convolution then has no bias) and the activation; then 2x2 pooling
    (``pool{b}``) while the feature map is at least 2x2, and dropout ``conv_dropout``. Then
    Flatten, the optional dense head (``dense``, with batch normalisation if ``batch_norm``),
    dropout and a softmax output. Genes a genome lacks take the defaults of DeepEvolve's genome:
    one convolution per block, no batch normalisation, no block dropout.

    Args and return value as :func:`build_mlp`, for a :func:`cnn_space` genome and an
    ``input_shape`` of ``(h, w)`` or ``(h, w, channels)``.
    """
    keras = _keras()
    layers = keras.layers
    values = genome_values(genome)
    shape = tuple(input_shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"build_cnn needs (h, w) or (h, w, channels) inputs, got {shape!r}")
    activation = values.get("activation") or "relu"
    kernel = int(values.get("kernel_size") or 3)
    pooling = values.get("pooling") or "none"
    if pooling not in ("max", "avg", "none"):
        raise ValueError(f"pooling must be 'max', 'avg' or 'none', got {pooling!r}")
    batch_norm = bool(values.get("batch_norm") or False)
    convs = int(values.get("convs_per_block") or 1)
    block_dropout = float(values.get("conv_dropout") or 0.0)

    inputs = keras.Input(shape=shape, name="input")
    x = layers.Reshape(shape + (1,), name="channels")(inputs) if len(shape) == 2 else inputs
    size = min(shape[:2])
    for b in range(int(values.get("conv_blocks") or 1)):
        for j in range(convs):
            name = f"conv{b}" if j == 0 else f"conv{b}_{j}"
            x = layers.Conv2D(int(values.get("filters") or 16) * 2 ** b, kernel, padding="same",
                              use_bias=not batch_norm,
                              activation=None if batch_norm else activation, name=name)(x)
            if batch_norm:
                x = layers.BatchNormalization(name=f"{name}_bn")(x)
                x = layers.Activation(activation, name=f"{name}_act")(x)
        if pooling != "none" and size >= 2:
            pool = layers.MaxPooling2D if pooling == "max" else layers.AveragePooling2D
            x = pool(2, name=f"pool{b}")(x)
            size //= 2
        if block_dropout:
            x = layers.Dropout(block_dropout, name=f"block_dropout{b}")(x)
    x = layers.Flatten(name="flatten")(x)
    if values.get("dense"):
        x = layers.Dense(int(values["dense"]), use_bias=not batch_norm,
                         activation=None if batch_norm else activation, name="dense")(x)
        if batch_norm:
            x = layers.BatchNormalization(name="dense_bn")(x)
            x = layers.Activation(activation, name="dense_act")(x)
    if values.get("dropout"):
        x = layers.Dropout(float(values["dropout"]), name="dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name="cnn")


# -------------------------------------------------------------------------------------- optimizer
LR_SCHEDULES = ("constant", "linear", "cosine")


def make_optimizer(genome: Any, default: str = "adam", *, schedule: str = "constant",
                   steps: int | None = None) -> Any:
    """The Keras optimizer a genome names (gene ``optimizer``) with its ``learning_rate`` gene.

    Args:
        genome: a genome or dict; missing genes fall back to ``default`` and Keras's learning
            rate (0.001).
        default: optimizer name used when the genome has no ``optimizer`` gene.
        schedule: ``"constant"`` keeps the genome's learning rate; ``"linear"`` and
            ``"cosine"`` start from it and decay it to 0 over ``steps`` optimizer steps
            (``keras.optimizers.schedules.PolynomialDecay`` / ``CosineDecay``). Decaying to
            zero at the end of a fixed budget is the budget-aware training of Li, Yumer and
            Ramanan (ICLR 2020): a network trained for one epoch ends far better than with a
            constant rate, so short fitness evaluations rank genomes closer to how they train.
        steps: length of the decay in optimizer steps (required unless ``"constant"``).

    Returns:
        A fresh ``keras.optimizers.Optimizer``.
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
    if schedule != "constant" and (isinstance(steps, bool) or not isinstance(steps, int)
                                   or steps < 1):
        raise ValueError(f"a {schedule!r} schedule needs steps, a positive int; got {steps!r}")
    keras = _keras()
    values = genome_values(genome)
    name = values.get("optimizer") or default
    rate = values.get("learning_rate")
    config = {} if rate is None else {"learning_rate": float(rate)}
    if schedule != "constant":
        start = config.get("learning_rate", 0.001)
        schedules = keras.optimizers.schedules
        config["learning_rate"] = (schedules.PolynomialDecay(start, steps, 0.0)
                                   if schedule == "linear" else schedules.CosineDecay(start, steps))
    try:
        return keras.optimizers.get({"class_name": name, "config": config})
    except ValueError as error:
        raise ValueError(f"unknown optimizer {name!r}: {error}") from None
