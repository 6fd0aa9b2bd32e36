"""Throughput of weight-vector fitness evaluation: individuals x samples per second.

Part 1, MLP rows: ways of computing the cross-entropy fitness of a population of 784-H-10
weight vectors on one minibatch of MNIST, measured side by side in one process:

  (a) tutorial  seed 004's way: for each individual ``model.set_weights`` + ``model.predict``;
  (b) deapnn    ``BatchedEvaluator.evaluate_population`` on the population buffer (the rows of
                one aligned array, padded apart to the evaluator's ``row_length`` as deapnn's
                strategies hand them out, ``population_matrix``; all layers with bias and
                activation, softmax cross-entropy, accuracy, finiteness checks, fitness tuples),
                as it runs by default: input pixels that are zero in every image of the minibatch
                are left out of the first layer (``skip_zero_inputs``; exact, same scores);
  (b') dense    the same with ``skip_zero_inputs=False``, from the buffer (read in place: each
                padded row is viewed as (rows, hidden), so the first kernel is never sliced out;
                its extra rows, 1.5%, meet zero inputs): every pixel multiplied, the full dense
                work of (c) plus everything (b) does;
  (b'') copy    dense again, on separately allocated vectors (``initRepeat``'s population),
                copied once per call into the evaluator's padded scratch matrix (same graph,
                same bits);
  (c) bare      the two batched matmuls of the same shapes on tensors already in TensorFlow
                (no bias, activation, loss or data movement): the limit of dense evaluation on
                this machine. (b) can pass it only by doing less work, which the (b') column
                separates out.

Part 2, model rows: a Functional model built by ``deapnn.keras.models.build_mlp`` (batch
normalisation, dropout) and a convolutional Functional model (Conv2D, batch normalisation, max
pooling, dropout), ``BatchedEvaluator.evaluate_population`` on the population buffer, three ways:
"batched" (``path="auto"``: both models are chains of layers the spec graph covers, so it takes
the spec graph), "stateless" (forced: Keras' own layers, ``model.stateless_call`` under
``vectorized_map``, :mod:`deapnn.weights.stateless`, the path of models the spec does not cover)
and the per-individual "fallback" (``set_weights`` + one Keras call per individual, timed on a
few individuals; its cost is per individual).

Columns timed in one row alternate call for call, so that load from other processes on the
machine falls on all alike; each figure is the fastest of its timed calls. The 1-minute load
average before and after each row is recorded.

To reproduce: ``python benchmarks/weights_throughput.py``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _timed(fn, repeats: int) -> float:
    """Fastest of ``repeats`` calls after one warm-up call (robust to other load on the cores)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _timed_side_by_side(fns: dict, repeats: int) -> dict:
    """Fastest of ``repeats`` calls of each function, calling them in turn (one warm-up each)."""
    for fn in fns.values():
        fn()
    times: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(ts) for name, ts in times.items()}


def measure(hidden: int, population: int, samples: int, repeats: int, tutorial_individuals: int,
            seed: int = 0) -> dict:
    """Measure (a), (b), (c) for one 784-hidden-10 network; rates in individuals x samples / s."""
    import keras
    import tensorflow as tf
    from deap import creator

    from deapnn.data import load_mnist_arrays
    from deapnn.weights import BatchedEvaluator, NetworkSpec, WeightCodec

    (x_train, y_train), _ = load_mnist_arrays()
    x = (x_train[:samples] / 255.0).astype(np.float32)
    y = y_train[:samples].astype(np.int64)
    spec = NetworkSpec.mlp((28, 28), [hidden], 10)
    rng = np.random.default_rng(seed)
    layout = spec.layout()
    pop = [creator.WeightVector(rng.standard_normal(layout.size, dtype=np.float32)
                                * layout.init_std("glorot", biases=True))
           for _ in range(population)]

    # (a) the tutorial: one set_weights + predict per individual
    model = spec.build_keras()
    codec = WeightCodec(model)
    subset = pop[:tutorial_individuals]

    def tutorial():
        for ind in subset:
            model.set_weights(codec.unflatten(ind))
            probs = model.predict(x, verbose=0)
            -np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)))

    t_a = _timed(tutorial, max(1, repeats // 5))
    rate_a = len(subset) * samples / t_a

    # (b) deapnn's batched evaluator, on the population buffer as deapnn's strategies allocate
    # it once an evaluator exists (rows padded apart to the evaluator's row length, so the
    # first kernel is read in place)
    from deapnn.weights.buffers import padded_matrix, population_matrix
    from deapnn.weights.types import rows_as_individuals

    evaluator = BatchedEvaluator(spec, x, y, batch_size=None)
    dense = BatchedEvaluator(spec, x, y, batch_size=None, skip_zero_inputs=False)
    buffer = population_matrix(population, layout.size)
    buffer[...] = np.stack(pop)
    rows = rows_as_individuals(buffer, creator.WeightVector)
    assert padded_matrix(rows, dense.row_length) is not None  # read in place, no copy

    # (c) bare batched matmuls of the same shapes, tensors already placed
    w = np.stack(pop)
    k1 = tf.constant(w[:, : 784 * hidden].reshape(population, 784, hidden))
    k2_start = 784 * hidden + hidden
    k2 = tf.constant(w[:, k2_start : k2_start + hidden * 10].reshape(population, hidden, 10))
    xt = tf.constant(x.reshape(samples, 784))

    @tf.function
    def bare(xt, k1, k2):
        return tf.matmul(tf.matmul(xt[None], k1), k2)

    load = os.getloadavg()[0]
    times = _timed_side_by_side({"deapnn": lambda: evaluator.evaluate_population(rows),
                                 "dense": lambda: dense.evaluate_population(rows),
                                 "copy": lambda: dense.evaluate_population(pop),
                                 "bare": lambda: bare(xt, k1, k2).numpy()}, repeats)
    t_b, t_d, t_e, t_c = times["deapnn"], times["dense"], times["copy"], times["bare"]
    rate_b = population * samples / t_b
    rate_d = population * samples / t_d
    rate_e = population * samples / t_e
    rate_c = population * samples / t_c
    live = int(np.count_nonzero(np.any(x.reshape(samples, -1) != 0, axis=0)))
    # the two ways give the same fitness
    np.testing.assert_allclose([f[0] for f in evaluator.evaluate_population(rows)],
                               [f[0] for f in dense.evaluate_population(pop)], atol=1e-5)
    np.testing.assert_allclose([f[0] for f in dense.evaluate_population(rows)],
                               [f[0] for f in dense.evaluate_population(pop)], atol=1e-6)

    # sanity: (b) computes what Keras computes
    model.set_weights(codec.unflatten(pop[0]))
    ref = model.predict(x[:64], verbose=0)
    np.testing.assert_allclose(evaluator.predict(pop[0], x[:64])[0], ref, atol=1e-5)
    keras.backend.clear_session()
    return {
        "network": f"784-{hidden}-10",
        "parameters": layout.size,
        "population": population,
        "samples": samples,
        "tutorial_individuals_timed": len(subset),
        "live_input_pixels": live,
        "seconds": {"tutorial": t_a, "deapnn": t_b, "deapnn_dense": t_d, "deapnn_dense_copy": t_e,
                    "bare": t_c},
        "rate": {"tutorial": rate_a, "deapnn": rate_b, "deapnn_dense": rate_d,
                 "deapnn_dense_copy": rate_e, "bare": rate_c},
        "deapnn_over_tutorial": rate_b / rate_a,
        "deapnn_over_bare": rate_b / rate_c,
        "deapnn_dense_over_bare": rate_d / rate_c,
        "deapnn_dense_copy_over_bare": rate_e / rate_c,
        "load_average_1min": [load, os.getloadavg()[0]],
    }


def model_for(kind: str):
    """The Part 2 models: ``"functional"`` (``build_mlp``: 784-64-10, batch normalisation,
    dropout) or ``"conv"`` (Conv2D 8x3x3, batch normalisation, 2x2 max pooling, dropout, Dense
    10), Functional, on 28x28 inputs."""
    import keras

    from deapnn.keras.models import build_mlp

    if kind == "functional":
        return build_mlp({"neurons0": 64, "batch_norm": True, "dropout0": 0.2}, (28, 28), 10)
    if kind == "conv":
        inputs = keras.Input((28, 28))
        h = keras.layers.Reshape((28, 28, 1))(inputs)
        h = keras.layers.Conv2D(8, 3, activation="relu")(h)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.MaxPooling2D(2)(h)
        h = keras.layers.Dropout(0.25)(h)
        h = keras.layers.Flatten()(h)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h), name="conv")
    raise ValueError(f"kind must be 'functional' or 'conv', got {kind!r}")


def measure_model(kind: str, population: int, samples: int, repeats: int,
                  fallback_individuals: int, seed: int = 0) -> dict:
    """Batched (``path="auto"``) against the per-individual fallback for one Part 2 model; rates
    in individuals x samples / s. The fallback is timed on ``fallback_individuals`` of the
    population (its cost is per individual)."""
    from deapnn.data import load_mnist_arrays
    from deapnn.weights import BatchedEvaluator, WeightLayout
    from deapnn.weights.buffers import aligned_matrix

    (x_train, y_train), _ = load_mnist_arrays()
    x = (x_train[:samples] / 255.0).astype(np.float32)
    y = y_train[:samples].astype(np.int64)
    model = model_for(kind)
    layout = WeightLayout.from_model(model)
    rng = np.random.default_rng(seed)
    buffer = aligned_matrix(population, layout.size)
    buffer[...] = rng.standard_normal((population, layout.size), dtype=np.float32) * \
        layout.init_std("glorot", biases=True)
    for name, sl in zip(layout.names, layout.slices()):  # batch-norm variances must be > 0
        if name.endswith("moving_variance"):
            buffer[:, sl] = 1.0 + np.abs(buffer[:, sl])
    rows = list(buffer)
    batched = BatchedEvaluator(model, x, y, batch_size=None)
    stateless = BatchedEvaluator(model, x, y, batch_size=None, path="stateless")
    fallback = BatchedEvaluator(model, x, y, batch_size=None, path="fallback")
    subset = rows[:fallback_individuals]
    # the three ways give the same fitness
    expect = [f[0] for f in fallback.evaluate_population(subset)]
    for evaluator in (batched, stateless):
        np.testing.assert_allclose([f[0] for f in evaluator.evaluate_population(subset)], expect,
                                   atol=1e-4)
    load = os.getloadavg()[0]
    times = _timed_side_by_side({"batched": lambda: batched.evaluate_population(rows),
                                 "stateless": lambda: stateless.evaluate_population(rows),
                                 "fallback": lambda: fallback.evaluate_population(subset)},
                                max(1, repeats // 2))
    rate_b = population * samples / times["batched"]
    rate_s = population * samples / times["stateless"]
    rate_f = len(subset) * samples / times["fallback"]
    return {
        "model": kind, "path": batched.path, "parameters": layout.size,
        "layers": [type(layer).__name__ for layer in model.layers],
        "population": population, "samples": samples, "fallback_individuals_timed": len(subset),
        "seconds": times,
        "rate": {"batched": rate_b, "stateless": rate_s, "fallback": rate_f},
        "batched_over_fallback": rate_b / rate_f,
        "stateless_over_fallback": rate_s / rate_f,
        "load_average_1min": [load, os.getloadavg()[0]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--population", type=int, default=100)
    parser.add_argument("--samples", type=int, nargs="+", default=[256, 1024],
                        help="minibatch sizes (samples per individual) to measure")
    parser.add_argument("--repeats", type=int, default=20,
                        help="timed repeats of (b), (c); (a) gets a fifth of them")
    parser.add_argument("--tutorial-individuals", type=int, default=100,
                        help="individuals timed for (a) (its rate is per individual anyway)")
    parser.add_argument("--models", nargs="*", default=["functional", "conv"],
                        choices=["functional", "conv"], help="Part 2 models to measure")
    parser.add_argument("--model-population", type=int, default=64)
    parser.add_argument("--model-samples", type=int, nargs="+", default=[32, 256],
                        help="minibatch sizes for the Part 2 models")
    parser.add_argument("--fallback-individuals", type=int, default=8,
                        help="individuals timed for the per-individual fallback")
    parser.add_argument("--out", type=Path, default=RESULTS / "weights_throughput.json")
    args = parser.parse_args()
    rows = [measure(h, args.population, n, args.repeats, args.tutorial_individuals)
            for h in args.hidden for n in args.samples]
    print(f"population {args.population}; rates in individuals x samples per second "
          f"(best of {args.repeats} timed calls; (b), (b'), (b''), (c) alternating)")
    print(f"{'network':<12}{'samples':>8}{'live px':>8}{'(a) tutorial':>14}{'(b) deapnn':>13}"
          f"{'(b) dense':>13}{'(b) copy':>13}{'(c) bare':>13}{'b/a':>7}{'b/c':>6}{'bd/c':>6}"
          f"{'bc/c':>6}")
    for r in rows:
        print(f"{r['network']:<12}{r['samples']:>8}{r['live_input_pixels']:>8}"
              f"{r['rate']['tutorial']:>14,.0f}{r['rate']['deapnn']:>13,.0f}"
              f"{r['rate']['deapnn_dense']:>13,.0f}{r['rate']['deapnn_dense_copy']:>13,.0f}"
              f"{r['rate']['bare']:>13,.0f}"
              f"{r['deapnn_over_tutorial']:>6.0f}x{r['deapnn_over_bare']:>6.2f}"
              f"{r['deapnn_dense_over_bare']:>6.2f}{r['deapnn_dense_copy_over_bare']:>6.2f}"
              f"   load {r['load_average_1min'][0]:.1f}-{r['load_average_1min'][1]:.1f}")
    model_rows = [measure_model(kind, args.model_population, n, args.repeats,
                                args.fallback_individuals)
                  for kind in args.models for n in args.model_samples]
    if model_rows:
        print(f"\nmodels: population {args.model_population}; rates in individuals x samples "
              "per second")
        print(f"{'model':<12}{'samples':>8}{'path':>10}{'params':>8}{'batched':>13}"
              f"{'stateless':>13}{'fallback':>13}{'b/f':>8}{'s/f':>8}")
        for r in model_rows:
            print(f"{r['model']:<12}{r['samples']:>8}{r['path']:>10}{r['parameters']:>8}"
                  f"{r['rate']['batched']:>13,.0f}{r['rate']['stateless']:>13,.0f}"
                  f"{r['rate']['fallback']:>13,.0f}{r['batched_over_fallback']:>7.0f}x"
                  f"{r['stateless_over_fallback']:>7.0f}x   load "
                  f"{r['load_average_1min'][0]:.1f}-{r['load_average_1min'][1]:.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
               "args": {k: str(v) for k, v in vars(args).items()}, "results": rows,
               "models": model_rows}
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
