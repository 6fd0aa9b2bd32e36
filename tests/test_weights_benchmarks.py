"""Smoke tests of the weight-evolution benchmark scripts on tiny random data."""

import argparse

import numpy as np
import pytest

import weights_mnist  # benchmarks/ is on sys.path (conftest.py); an import error fails, never skips
import weights_throughput
from deapnn.data import from_arrays
from deapnn.weights import WeightCodec


def args(**changes):
    ns = argparse.Namespace(budget=1.0, arch="conv", filters=4, hidden=[], population=12, seed=0,
                            eval_every=0.5, ga_batch=32, ga_sigma=0.1, ga_sigma_final=0.05,
                            ga_indpb=1.0, ga_alpha=0.0, ga_cxpb=0.5, ga_mutpb=0.9,
                            ga_tournsize=3, ga_elites=2, es_population=8, es_batch=32,
                            es_sigma=0.05, es_lr=0.02, es_weight_decay=0.0, es_lr_decay=0.999,
                            es_sigma_decay=0.999, pgpe_population=8, pgpe_batch=32, pgpe_sigma=0.05,
                            pgpe_lr=0.02, pgpe_max_speed=None, pgpe_lr_decay=0.999, pgpe_optimizer="clipup",
                            pgpe_sigma_lr=0.1, pgpe_weight_decay=0.0, sepcma_population=8,
                            sepcma_batch=32, sepcma_sigma=0.05, cma_population=8, cma_batch=32,
                            cma_sigma=0.1, cma_filters=1, cma_hidden=[4], generations=None,
                            backend="serial", workers=None, ga_mate="blend", ga_ratio=1.0,
                            ga_batch_final=None, ga_batch_switch=0.5)
    for key, value in changes.items():
        setattr(ns, key, value)
    return ns


@pytest.mark.parametrize("method", ["seed004", "ga", "es", "pgpe", "sepcma", "cma", "seedarch"])
def test_weights_mnist_methods_run_and_report(method, tmp_path):
    rng = np.random.default_rng(0)
    data = from_arrays(rng.random((300, 28, 28), dtype=np.float32), rng.integers(0, 10, 300),
                       rng.random((50, 28, 28), dtype=np.float32), rng.integers(0, 10, 50),
                       validation=50)
    options = args()
    result = weights_mnist.run_method(method, options, data)
    # the reported accuracy is Keras' own forward pass of the returned weights on the test set
    spec = weights_mnist.method_network(method, options)
    model = spec.build_keras()
    WeightCodec(model).decode(result["best_weights"])
    keras_accuracy = float(np.mean(np.asarray(model(data.x_test)).argmax(-1) == data.y_test))
    assert result["test_accuracy"] == pytest.approx(keras_accuracy, abs=1.01 / len(data.y_test))
    assert result["generations"] > 0 and result["evaluations"] > 0
    assert result["curve"][-1]["test_accuracy"] == pytest.approx(result["test_accuracy"])
    assert "precision" in result["classification_report_text"]
    weights_mnist.plot([result], tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 0


@pytest.mark.parametrize("method, mate", [("ga", "blend"), ("ga", "heuristic"), ("pgpe", "blend")])
def test_weights_mnist_generations_stop_exactly_and_repeat_bit_for_bit(method, mate):
    rng = np.random.default_rng(1)
    data = from_arrays(rng.random((200, 28, 28), dtype=np.float32), rng.integers(0, 10, 200),
                       rng.random((40, 28, 28), dtype=np.float32), rng.integers(0, 10, 40),
                       validation=40)
    # 13 generations: not a multiple of the 10-generation chunks between progress checks
    options = args(generations=13, budget=1e-9, eval_every=1e9, ga_mate=mate, ga_ratio=0.5)
    first = weights_mnist.run_method(method, options, data)
    second = weights_mnist.run_method(method, options, data)
    assert first["generations"] == second["generations"] == 13  # not the (tiny) time budget
    assert first["evaluations"] == second["evaluations"] > 0
    np.testing.assert_array_equal(first["best_weights"], second["best_weights"])
    assert first["best_weights_sha256"] == second["best_weights_sha256"]
    other = weights_mnist.run_method(method, args(generations=13, eval_every=1e9, seed=1,
                                                  ga_mate=mate, ga_ratio=0.5), data)
    assert other["best_weights_sha256"] != first["best_weights_sha256"]  # the seed matters
    assert f"cx_{mate}" in str(first["config"].get("mate", f"cx_{mate}"))


def test_weights_mnist_ga_switches_to_a_larger_minibatch():
    rng = np.random.default_rng(2)
    data = from_arrays(rng.random((200, 28, 28), dtype=np.float32), rng.integers(0, 10, 200),
                       rng.random((40, 28, 28), dtype=np.float32), rng.integers(0, 10, 40),
                       validation=40)
    plain = weights_mnist.run_method("ga", args(generations=12, eval_every=1e9), data)
    switched = weights_mnist.run_method("ga", args(generations=12, eval_every=1e9, ga_batch_final=64,
                                                   ga_batch_switch=0.5), data)
    assert switched["generations"] == plain["generations"] == 12
    assert "minibatch 64 from 50%" in switched["config"]["fitness"]
    # after the first chunk of 10 generations the whole population (12) is scored again on the new
    # minibatch, and the two runs part
    assert switched["evaluations"] > plain["evaluations"] - 3
    assert switched["best_weights_sha256"] != plain["best_weights_sha256"]


def test_weights_throughput_measures_all_ways_on_real_mnist():
    row = weights_throughput.measure(hidden=8, population=6, samples=64, repeats=2,
                                     tutorial_individuals=2)
    assert row["network"] == "784-8-10" and row["parameters"] == 784 * 8 + 8 + 8 * 10 + 10
    assert set(row["rate"]) == {"tutorial", "deapnn", "deapnn_dense", "deapnn_dense_copy", "bare"}
    assert all(rate > 0 for rate in row["rate"].values())
    assert 0 < row["live_input_pixels"] < 784  # MNIST's blank border pixels
    assert row["deapnn_over_bare"] == pytest.approx(row["rate"]["deapnn"] / row["rate"]["bare"])
    assert row["deapnn_dense_over_bare"] == pytest.approx(
        row["rate"]["deapnn_dense"] / row["rate"]["bare"])
    assert len(row["load_average_1min"]) == 2
    # Part 2: a Functional (build_mlp, batch norm) and a conv model, batched vs the fallback
    for kind in ("functional", "conv"):
        model_row = weights_throughput.measure_model(kind, population=4, samples=16, repeats=1,
                                                     fallback_individuals=2)
        assert model_row["path"] in ("spec", "stateless")  # batched, not the fallback
        assert set(model_row["rate"]) == {"batched", "stateless", "fallback"}
        assert "BatchNormalization" in model_row["layers"] and "Dropout" in model_row["layers"]
        assert model_row["batched_over_fallback"] == pytest.approx(
            model_row["rate"]["batched"] / model_row["rate"]["fallback"])
