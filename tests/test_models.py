"""Search spaces and Keras builders for MLP and CNN genomes."""

import pickle

import pytest

from deapnn.keras import models
from deapnn.hparams.genome import make_genome
from deapnn.hparams.space import Choice, FloatRange, SearchSpace
from genomes import mlp_genome

NATURAL_SELECTION_GENES = {"optimizer", "initializer", "activation", "batch_size", "input_dropout"} | {
    f"{kind}{i}" for kind in ("neurons", "dropout") for i in range(5)}


mlp = mlp_genome


def test_default_mlp_space_is_natural_selections_plus_three():
    space = models.MLP_SPACE
    assert NATURAL_SELECTION_GENES <= set(space.names)
    assert set(space.names) - NATURAL_SELECTION_GENES == {"learning_rate", "use_bias", "batch_norm"}
    assert space["optimizer"].values == ("adam", "adamax", "nadam")
    assert len(space["initializer"].values) == 6 and space["activation"].values == ("relu", "elu")
    assert space["batch_size"].values == (16, 32, 64)
    assert space["neurons3"].values == (0, 16, 32, 64, 128, 256, 512, 1024)
    assert space["dropout0"].values == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    assert space["learning_rate"] == FloatRange(1e-4, 1e-2, log=True)
    assert space.canonical is models.mlp_canonical
    assert space.names.index("dropout2") == space.names.index("neurons2") + 1


def test_mlp_space_knobs_and_validation():
    small = models.mlp_space(layers=2, neurons=[0, 8], learning_rate=[1e-3, 1e-2])
    assert small["learning_rate"] == Choice([1e-3, 1e-2])
    assert [n for n in small.names if n.startswith("neurons")] == ["neurons0", "neurons1"]
    assert small.size == 3 * 2 * 6 * 2 * 3 * 2 * 2 * 6 * (2 * 6) ** 2
    with pytest.raises(ValueError, match="layers must be a positive int, got 0"):
        models.mlp_space(layers=0)


def test_canonical_keys_collapse_genomes_that_build_the_same_network():
    base = mlp(neurons0=256, dropout0=0.1, neurons2=128, dropout2=0.2)
    # dropout of an absent layer does not matter ...
    assert mlp(neurons0=256, dropout0=0.1, neurons2=128, dropout2=0.2, dropout1=0.5).key() == base.key()
    # ... nor which slots the present layers sit in, only their order
    assert mlp(neurons0=256, dropout0=0.1, neurons1=128, dropout1=0.2).key() == base.key()
    assert mlp(neurons0=128, dropout0=0.2, neurons1=256, dropout1=0.1).key() != base.key()
    assert mlp(neurons0=256, dropout0=0.3, neurons2=128, dropout2=0.2).key() != base.key()
    canonical = models.MLP_SPACE.canonicalize(base)
    assert (canonical["neurons1"], canonical["dropout1"], canonical["dropout2"]) == (128, 0.2, 0.0)


def test_without_hidden_layers_hidden_genes_do_not_matter():
    a = mlp(neurons0=0, activation="relu", use_bias=True, batch_norm=True, dropout3=0.4)
    b = mlp(neurons0=0, activation="elu", use_bias=False, batch_norm=False)
    assert a.key() == b.key()
    assert mlp(neurons0=0, initializer="he_normal").key() != b.key()  # the output layer uses it


def test_mlp_space_round_trips_through_json_and_pickle():
    space = models.MLP_SPACE
    assert SearchSpace.from_json(space.to_json()) == space
    clone = pickle.loads(pickle.dumps(space))
    assert clone == space and clone.canonical is models.mlp_canonical


def _dense_units(model):
    return [layer.units for layer in model.layers if type(layer).__name__ == "Dense"]


def test_zero_neuron_layers_are_absent_from_the_built_mlp():
    genome = mlp(neurons0=64, neurons1=0, neurons2=16, dropout2=0.3, neurons4=32, batch_norm=True)
    model = models.build_mlp(genome, (8, 8), 10)
    assert _dense_units(model) == [64, 16, 32, 10]
    names = {layer.name for layer in model.layers}
    assert {"hidden0", "hidden2", "hidden4", "dropout2", "batch_norm0", "output"} <= names
    assert not {"hidden1", "hidden3", "dropout0"} & names
    assert model.output_shape == (None, 10)


def test_mlp_without_hidden_layers_is_a_linear_softmax_model():
    model = models.build_mlp(mlp(neurons0=0, input_dropout=0.2), (8, 8), 10)
    assert _dense_units(model) == [10]
    assert model.count_params() == 64 * 10 + 10


def test_use_bias_and_build_from_a_plain_dict():
    model = models.build_mlp(dict(mlp(neurons0=16, use_bias=False).as_dict()), (4,), 3)
    assert model.get_layer("hidden0").use_bias is False
    assert model.count_params() == 4 * 16 + 16 * 3 + 3


CNN = {"conv_blocks": 3, "convs_per_block": 1, "filters": 8, "kernel_size": 3,
       "pooling": "max", "batch_norm": False, "activation": "relu", "conv_dropout": 0.0,
       "dense": 32, "dropout": 0.1, "optimizer": "adam", "learning_rate": 1e-3, "batch_size": 32}


def test_cnn_genome_builds_and_pooling_stops_at_one_pixel():
    space = models.CNN_SPACE
    genome = make_genome(space, CNN)
    model = models.build_cnn(genome, (8, 8), 10)
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [8, 16, 32]
    assert model.get_layer("pool2").output.shape[1:3] == (1, 1)
    assert _dense_units(model) == [32, 10]
    tiny = models.build_cnn(dict(genome.as_dict(), conv_blocks=1, pooling="none", dense=0), (8, 8, 1), 10)
    assert _dense_units(tiny) == [10]


def test_cnn_space_has_the_genes_a_demanding_user_expects():
    names = set(models.CNN_SPACE.names)
    assert {"conv_blocks", "convs_per_block", "filters", "kernel_size", "pooling", "batch_norm",
            "conv_dropout", "dense", "dropout", "optimizer", "learning_rate", "batch_size"} <= names
    fixed = models.cnn_space(conv_blocks=[2], batch_norm=[True])
    assert fixed.to_dict()  # a one-value gene is a valid space
    genome = make_genome(fixed, dict(CNN, conv_blocks=2, batch_norm=True))
    assert genome.as_dict()["conv_blocks"] == 2
    with pytest.raises(ValueError, match="conv_blocks"):
        make_genome(fixed, dict(CNN, conv_blocks=3))


def test_cnn_blocks_batch_norm_and_dropout_build_the_layers_they_name():
    genome = dict(CNN, conv_blocks=2, convs_per_block=2, batch_norm=True, conv_dropout=0.2,
                  kernel_size=5, dense=64, pooling="avg")
    model = models.build_cnn(genome, (8, 8), 10)
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [(c.name, c.filters, c.kernel_size, c.use_bias) for c in convs] == [
        ("conv0", 8, (5, 5), False), ("conv0_1", 8, (5, 5), False),
        ("conv1", 16, (5, 5), False), ("conv1_1", 16, (5, 5), False)]
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("BatchNormalization") == 5          # 4 convolutions + the dense head
    assert type(model.get_layer("pool1")).__name__ == "AveragePooling2D"
    assert model.get_layer("block_dropout1").rate == pytest.approx(0.2)
    assert _dense_units(model) == [64, 10]
    # DeepEvolve's original genes alone still build (one convolution per block, no batch norm)
    old = {k: CNN[k] for k in ("conv_blocks", "filters", "kernel_size", "pooling", "activation",
                               "dense", "dropout")}
    plain = models.build_cnn(old, (8, 8), 10)
    assert [type(layer).__name__ for layer in plain.layers].count("BatchNormalization") == 0
    assert len([layer for layer in plain.layers if type(layer).__name__ == "Conv2D"]) == 3


def test_make_optimizer_uses_the_genomes_optimizer_and_learning_rate():
    opt = models.make_optimizer(mlp(optimizer="adamax", learning_rate=0.005))
    assert type(opt).__name__ == "Adamax"
    assert float(opt.learning_rate) == pytest.approx(0.005)
    assert type(models.make_optimizer({})).__name__ == "Adam"
    with pytest.raises(ValueError, match="unknown optimizer 'nope'"):
        models.make_optimizer({"optimizer": "nope"})


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_make_optimizer_decays_the_genomes_learning_rate_to_zero(schedule):
    opt = models.make_optimizer(mlp(optimizer="nadam", learning_rate=0.004), schedule=schedule,
                                steps=100)
    assert type(opt).__name__ == "Nadam"
    rate = opt.learning_rate  # read through the schedule at the optimizer's current step
    assert float(rate) == pytest.approx(0.004)
    opt.iterations.assign(50)
    assert 0.0 < float(opt.learning_rate) < 0.004
    opt.iterations.assign(100)
    assert float(opt.learning_rate) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("kwargs, message", [
    ({"schedule": "step"}, "schedule must be one of .*'constant', 'linear', 'cosine'.*got 'step'"),
    ({"schedule": "linear"}, "a 'linear' schedule needs steps, a positive int; got None"),
    ({"schedule": "cosine", "steps": 0}, "a 'cosine' schedule needs steps, a positive int; got 0"),
])
def test_make_optimizer_rejects_bad_schedules(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.make_optimizer({}, **kwargs)


def test_genome_values_rejects_other_types():
    with pytest.raises(TypeError, match="expected a deapnn genome or a dict of gene values, got 3"):
        models.genome_values(3)
