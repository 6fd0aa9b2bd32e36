"""KerasEvaluator and train_best on load_digits with tiny budgets (real Keras training)."""

import functools
import json
import math
import pickle
import random

import numpy as np
import pytest

from deapnn import data
from deapnn.core.failures import Failure, SetupError, is_failure
from deapnn.keras import evaluator as evaluator_module
from deapnn import keras as dkeras
from deapnn.keras import models
from deapnn.hparams.genome import make_genome
from genomes import mlp_genome

DIGITS = functools.partial(data.load_digits, seed=0)


def small_mlp(**changes):
    return mlp_genome(**{"learning_rate": 3e-3, "batch_size": 64, **changes})


def nan_model(genome, input_shape, n_classes):
    import keras

    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs)
    nan = keras.initializers.Constant(float("nan"))
    outputs = keras.layers.Dense(n_classes, activation="softmax", kernel_initializer=nan)(x)
    return keras.Model(inputs, outputs)


def three_class_model(genome, input_shape, n_classes):
    return models.build_mlp(genome, input_shape, 3)  # labels go up to 9: training raises


def keras_validation_scores(evaluator, genome):
    """What Keras itself reports for the genome's network trained as the evaluator trains it
    (same seed, same optimizer, plain ``fit``, no callbacks), on the validation split."""
    import keras

    ds = evaluator.dataset
    batch_size = genome.as_dict()["batch_size"]
    keras.backend.clear_session()
    with evaluator_module._seeded(dkeras.genome_seed(genome, evaluator.seed)):
        model = evaluator.compile(evaluator.build(genome, ds.input_shape, ds.n_classes), genome)
        model.fit(ds.x_train, ds.y_train, batch_size=batch_size, epochs=evaluator.max_epochs,
                  shuffle=True, verbose=0)
        scores = model.evaluate(ds.x_val, ds.y_val, verbose=0, return_dict=True)
    keras.backend.clear_session()
    return scores


def test_mlp_genome_trains_and_scores_on_validation():
    evaluator = dkeras.KerasEvaluator(DIGITS, max_epochs=2)
    record = evaluator.evaluate(small_mlp())
    assert not record.failed and record.epochs == 2 and not record.timed_out
    assert record.fitness == (record.score,) and 0.5 < record.score <= 1.0   # chance is 0.1
    assert record.score == pytest.approx(keras_validation_scores(evaluator, small_mlp())["accuracy"],
                                         abs=1e-6)
    assert record.params == 64 * 32 + 32 + 32 * 10 + 10
    assert set(record.history) == {"loss", "accuracy"}


def test_evaluation_is_reproducible_and_leaves_the_ga_random_streams_alone():
    evaluator = dkeras.KerasEvaluator(DIGITS, max_epochs=1)
    random.seed(5)
    np.random.seed(5)
    before = random.random(), np.random.random()
    random.seed(5)
    np.random.seed(5)
    first = evaluator(small_mlp())
    after = random.random(), np.random.random()
    assert after == before
    assert evaluator(small_mlp(dropout3=0.5)) == first  # same canonical key: same seed, same net


def test_cnn_genome_trains():
    genome = make_genome(models.CNN_SPACE, {
        "conv_blocks": 2, "convs_per_block": 1, "filters": 8, "kernel_size": 3, "pooling": "max",
        "batch_norm": False, "activation": "relu", "conv_dropout": 0.0, "dense": 32,
        "dropout": 0.0, "optimizer": "adam", "learning_rate": 3e-3, "batch_size": 64})
    record = dkeras.KerasEvaluator(DIGITS, models.build_cnn, max_epochs=1).evaluate(genome)
    assert not record.failed and 0.2 < record.score <= 1.0    # twice chance after one epoch


def test_cnn_genome_builds_trains_and_is_saved_by_train_best(tmp_path):
    import keras

    genome = make_genome(models.CNN_SPACE, {
        "conv_blocks": 2, "convs_per_block": 2, "filters": 8, "kernel_size": 3, "pooling": "max",
        "batch_norm": True, "activation": "relu", "conv_dropout": 0.1, "dense": 32,
        "dropout": 0.1, "optimizer": "adam", "learning_rate": 3e-3, "batch_size": 16})
    evaluator = dkeras.KerasEvaluator(DIGITS, models.build_cnn, max_epochs=1)
    result = dkeras.train_best(genome, evaluator, epochs=3, patience=1, path=tmp_path / "cnn")
    assert result.model_path.is_file() and 0.3 < result.test_accuracy <= 1.0
    saved = json.loads(result.genome_path.read_text())
    assert saved["genome"] == genome.as_dict() and saved["space"] is not None
    reloaded = keras.models.load_model(result.model_path)
    assert sum(type(layer).__name__ == "Conv2D" for layer in reloaded.layers) == 4
    ds = data.get_dataset(DIGITS)
    scores = reloaded.evaluate(ds.x_test, ds.y_test, batch_size=1024, verbose=0, return_dict=True)
    assert scores["accuracy"] == pytest.approx(result.test_accuracy, abs=1e-6)


def test_time_limit_stops_training():
    evaluator = dkeras.KerasEvaluator(DIGITS, max_epochs=10_000, max_training_time=0.01)
    record = evaluator.evaluate(small_mlp(batch_size=16))
    assert record.timed_out and record.epochs == 1 and not record.failed
    # scored as it is: an accuracy over the validation split, i.e. a count of its samples
    n_val = len(evaluator.dataset.y_val)
    assert record.score * n_val == pytest.approx(round(record.score * n_val), abs=1e-3)
    assert len(record.history["loss"]) == 1 and math.isfinite(record.history["loss"][0])
    strict = dkeras.KerasEvaluator(DIGITS, max_epochs=10_000, max_training_time=0.01,
                                     fail_on_timeout=True)
    fitness = strict(small_mlp(batch_size=16))
    assert is_failure(fitness) and "time limit of 0.01s" in fitness.reason


def test_nan_loss_gives_a_failure_fitness_with_the_reason():
    record = dkeras.KerasEvaluator(DIGITS, nan_model, max_epochs=3).evaluate(small_mlp())
    fitness = record.fitness
    assert record.epochs == 1 and record.params is not None
    assert isinstance(fitness, Failure) and tuple(fitness) == (-math.inf,)
    assert fitness.kind == "genome"
    assert fitness.reason == "non-finite training loss (nan) at epoch 1, batch 1 (TerminateOnNaN)"


def test_an_exception_in_training_gives_a_failure_fitness_with_the_reason():
    evaluator = dkeras.KerasEvaluator(DIGITS, three_class_model, max_epochs=1,
                                        objectives=("score", "params"))
    record = evaluator.evaluate(small_mlp())
    assert record.failed and is_failure(record.fitness)
    assert tuple(record.fitness) == (-math.inf, math.inf)
    assert record.reason.startswith("InvalidArgumentError: Received a label value of")


def test_a_failing_builder_is_recorded_too():
    flat = data.from_arrays(np.random.default_rng(0).random((60, 5)), np.arange(60) % 3)
    fitness = dkeras.KerasEvaluator(flat, models.build_cnn)(small_mlp())
    assert is_failure(fitness) and fitness.reason.startswith("ValueError: build_cnn needs (h, w)")


def test_two_objectives_and_loss_metric():
    evaluator = dkeras.KerasEvaluator(DIGITS, max_epochs=1, metric="loss",
                                        objectives=("score", "params"))
    assert evaluator.weights == (-1.0, -1.0) and evaluator.failure == (math.inf, math.inf)
    loss, params = evaluator(small_mlp(neurons0=16))
    assert 0.0 < loss < 3.0 and params == 64 * 16 + 16 + 16 * 10 + 10
    assert dkeras.KerasEvaluator(DIGITS, objectives=("score", "params")).weights == (1.0, -1.0)


def test_evaluator_pickles_cheaply_with_a_loader():
    evaluator = dkeras.KerasEvaluator(DIGITS, max_epochs=3, max_training_time=5.0)
    blob = pickle.dumps(evaluator)
    assert len(blob) < 2000
    clone = pickle.loads(blob)
    assert clone.max_epochs == 3 and clone.dataset is data.get_dataset(DIGITS)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"max_epochs": 0}, ValueError, "max_epochs must be a positive int, got 0"),
    ({"max_training_time": -1}, ValueError, "max_training_time must be positive or None, got -1"),
    ({"objectives": ("score", "speed")}, ValueError, "objectives must be distinct names"),
    ({"failure": (0.0, 1.0)}, ValueError, "failure needs one value per objective"),
    ({"metric": 3}, TypeError, "metric must be a Keras metric name, got 3"),
    ({"lr_schedule": "exp"}, ValueError, "lr_schedule must be one of .* got 'exp'"),
])
def test_evaluator_rejects_bad_configuration(kwargs, error, message):
    with pytest.raises(error, match=message):
        dkeras.KerasEvaluator(DIGITS, **kwargs)


def test_linear_lr_schedule_decays_to_zero_over_the_training_budget():
    evaluator = dkeras.KerasEvaluator(DIGITS, max_epochs=2, lr_schedule="linear")
    genome = small_mlp(neurons0=32, learning_rate=0.01, batch_size=64)
    model = evaluator.compile(models.build_mlp(genome, (8, 8), 10), genome)
    steps = 2 * math.ceil(len(evaluator.dataset.x_train) / 64)  # two epochs of 64-sample batches
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    model.optimizer.iterations.assign(steps // 2)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.005)
    model.optimizer.iterations.assign(steps)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
    score = evaluator(genome)[0]  # and it trains (chance is 0.1)
    assert 0.5 < score <= 1.0


def test_train_best_reduces_the_learning_rate_on_plateaus():
    evaluator = dkeras.KerasEvaluator(DIGITS, max_epochs=1)
    genome = small_mlp(neurons0=32, learning_rate=0.01, batch_size=16)
    result = dkeras.train_best(genome, evaluator, epochs=8, patience=8, lr_patience=0,
                                 lr_factor=0.5, monitor="val_accuracy")
    # patience 0: every epoch that does not raise the validation accuracy halves the rate;
    # over 8 epochs the accuracy of a few hundred digits stalls at least once
    assert result.epochs == 8
    assert float(result.model.optimizer.learning_rate) <= 0.005
    with pytest.raises(ValueError, match="lr_patience must be a non-negative int or None, got -1"):
        dkeras.train_best(genome, evaluator, lr_patience=-1)
    with pytest.raises(ValueError, match="lr_factor must be in \\(0, 1\\), got 1.5"):
        dkeras.train_best(genome, evaluator, lr_factor=1.5)


def test_train_best_saves_a_model_that_reloads_and_scores_the_same(tmp_path):
    import keras

    evaluator = dkeras.KerasEvaluator(DIGITS, max_epochs=1)
    genome = small_mlp(neurons0=64, dropout0=0.1)
    result = dkeras.train_best(genome, evaluator, epochs=4, patience=1,
                                 path=tmp_path / "best.keras")
    assert result.model_path == tmp_path / "best.keras" and result.model_path.is_file()
    assert result.genome_path == tmp_path / "best.json"
    assert 1 <= result.best_epoch <= result.epochs <= 4
    assert 0.5 < result.test_accuracy <= 1.0
    saved = json.loads(result.genome_path.read_text())
    assert saved["genome"] == genome.as_dict() and saved["test_accuracy"] == result.test_accuracy
    assert saved["space"]["canonical"] == "deapnn.keras.models:mlp_canonical"
    ds = data.get_dataset(DIGITS)
    reloaded = keras.models.load_model(result.model_path)
    scores = reloaded.evaluate(ds.x_test, ds.y_test, batch_size=1024, verbose=0, return_dict=True)
    assert scores["accuracy"] == pytest.approx(result.test_accuracy, abs=1e-6)
    assert scores["loss"] == pytest.approx(result.test_loss, rel=1e-5)
    with pytest.raises(ValueError, match="patience must be a non-negative int, got -1"):
        dkeras.train_best(genome, DIGITS, patience=-1)


def test_evaluator_drives_a_small_ga_through_the_toolbox_and_cache():
    import deapnn
    from deap import tools

    space = models.mlp_space(layers=2, neurons=[0, 16], learning_rate=[3e-3], batch_size=[64],
                             optimizer=["adam"], initializer=["glorot_uniform"],
                             input_dropout=[0.0], dropout=[0.0], batch_norm=[False])
    deapnn.seed(0)
    evaluator = dkeras.KerasEvaluator(DIGITS, max_epochs=1)
    toolbox = deapnn.make_toolbox(space, evaluator)
    hof = tools.HallOfFame(1)
    population, logbook = deapnn.evolve(toolbox.population(n=4), toolbox, 1, cxpb=0.5,
                                        mutpb=0.5, halloffame=hof)
    # 9 distinct networks: the linear one + {16 | 16-16} x activation x use_bias
    assert 1 <= toolbox.cache.misses <= 9
    assert 0.3 < hof[0].fitness.values[0] <= 1.0 and len(logbook) == 2   # chance is 0.1


def test_evaluator_runs_in_a_spawned_worker_process():
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    evaluator = dkeras.KerasEvaluator(DIGITS, max_epochs=1)  # the worker loads the digits
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        fitness = pool.submit(evaluator, small_mlp()).result(timeout=300)
    assert len(fitness) == 1 and 0.3 < fitness[0] <= 1.0


def test_train_best_follows_the_evaluators_learning_rate_schedule():
    genome = small_mlp(neurons0=16, learning_rate=0.01, batch_size=64)
    decaying = dkeras.KerasEvaluator(DIGITS, lr_schedule="linear")
    result = dkeras.train_best(genome, decaying, epochs=2, patience=2)
    assert result.epochs == 2           # the whole budget: the rate has decayed to 0
    assert float(result.model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
    constant = dkeras.train_best(genome, dkeras.KerasEvaluator(DIGITS), epochs=2, patience=2)
    assert float(constant.model.optimizer.learning_rate) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="lr_patience needs the 'constant' lr_schedule, but the "
                                         "evaluator decays the learning rate \\('linear'\\)"):
        dkeras.train_best(genome, decaying, lr_patience=1)


def test_train_best_stops_on_a_nan_loss():
    evaluator = dkeras.KerasEvaluator(DIGITS, nan_model)
    with pytest.raises(RuntimeError, match="train_best: non-finite training loss \\(nan\\) at "
                                           "epoch 1, batch 1 \\(TerminateOnNaN\\)"):
        dkeras.train_best(small_mlp(), evaluator, epochs=3)


def four_argument_builder(genome, input_shape, n_classes, width):
    return models.build_mlp(genome, input_shape, n_classes)


def missing_data():
    raise FileNotFoundError("no such file: /data/mnist.npz")


def test_setup_errors_are_raised_not_recorded():
    with pytest.raises(SetupError, match="unknown loss 'sparse_categorical_crosentropy'"):
        dkeras.KerasEvaluator(DIGITS, loss="sparse_categorical_crosentropy")(small_mlp())
    with pytest.raises(SetupError, match="the dataset could not be loaded: FileNotFoundError: "
                                         "no such file: /data/mnist.npz"):
        dkeras.KerasEvaluator(missing_data)(small_mlp())
    message = ("four_argument_builder.* cannot be called as build\\(genome, input_shape, "
               "n_classes\\): missing a required argument: 'width'")
    with pytest.raises(SetupError, match=message):
        dkeras.KerasEvaluator(DIGITS, four_argument_builder)
    with pytest.raises(SetupError, match=message):
        dkeras.train_best(small_mlp(), dkeras.KerasEvaluator(DIGITS), build=four_argument_builder)


FINGERPRINT_SCRIPT = """
import functools, sys
from deapnn import data
from deapnn.keras import KerasEvaluator
print(KerasEvaluator(functools.partial(data.load_digits, seed=0), max_epochs=2).fingerprint())
"""


def test_fingerprint_changes_with_what_changes_a_fitness_and_nothing_else():
    import subprocess
    import sys

    if not hasattr(data, "dataset_fingerprint"):
        pytest.skip("deapnn.data.dataset_fingerprint is not written yet")
    base = dkeras.KerasEvaluator(DIGITS, max_epochs=2)
    fingerprint = base.fingerprint()
    assert len(fingerprint) == 64 and int(fingerprint, 16) >= 0
    assert dkeras.KerasEvaluator(DIGITS, max_epochs=2, verbose=2).fingerprint() == fingerprint
    assert pickle.loads(pickle.dumps(base)).fingerprint() == fingerprint
    # stable across processes (the store compares it between runs)
    out = subprocess.run([sys.executable, "-c", FINGERPRINT_SCRIPT], capture_output=True,
                         text=True, check=True, timeout=120).stdout.split()[-1]
    assert out == fingerprint
    changes = [
        {"max_epochs": 3}, {"seed": 1}, {"metric": "loss"}, {"lr_schedule": "cosine"},
        {"max_training_time": 30.0}, {"fail_on_timeout": True}, {"batch_size": 64},
        {"build": models.build_cnn}, {"loss": "categorical_crossentropy"},
        {"objectives": ("score", "params")}, {"failure": (0.0,)}, {"maximize": False},
        {"steps_per_execution": 4},
        {"data": functools.partial(data.load_digits, seed=1)},         # another split
        {"data": functools.partial(data.load_digits, seed=0, validation=0.3)},
    ]
    seen = {fingerprint}
    for change in changes:
        kwargs = {"max_epochs": 2, **change}
        other = dkeras.KerasEvaluator(kwargs.pop("data", DIGITS), **kwargs).fingerprint()
        assert other not in seen, change
        seen.add(other)
