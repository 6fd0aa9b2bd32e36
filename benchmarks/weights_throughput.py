"""Throughput of weight-vector fitness evaluation: individuals x samples per second.

Three ways of computing the cross-entropy fitness of a population of MLP weight vectors on one
minibatch of MNIST, measured side by side in one process:

  (a) tutorial  seed 004's way: for each individual ``model.set_weights`` + ``model.predict``;
  (b) deapnn    ``BatchedEvaluator.evaluate_population`` on the list of individuals (copying
                them into the evaluator's weight blocks, all layers with bias and activation,
                softmax cross-entropy, accuracy, finiteness check, fitness tuples), as it runs
                by default: input pixels that are zero in every image of the minibatch are left
                out of the first layer (``skip_zero_inputs``; exact, same scores);
  (b') dense    the same with ``skip_zero_inputs=False``: every pixel multiplied, the full
                dense work of (c) plus everything (b) does;
  (c) bare      the two batched matmuls of the same shapes on tensors already in TensorFlow
                (no bias, activation, loss or data movement): the limit of dense evaluation on
                this machine. (b) can pass it only by doing less work, which the (b') column
                separates out.

(b), (b') and (c) are timed in alternation, call for call, so that load from other processes on
the machine falls on all alike; each figure is the fastest of its timed calls.

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

    # (b) deapnn's batched evaluator, on the list of individuals
    evaluator = BatchedEvaluator(spec, x, y, batch_size=None)
    dense = BatchedEvaluator(spec, x, y, batch_size=None, skip_zero_inputs=False)

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
    times = _timed_side_by_side({"deapnn": lambda: evaluator.evaluate_population(pop),
                                 "dense": lambda: dense.evaluate_population(pop),
                                 "bare": lambda: bare(xt, k1, k2).numpy()}, repeats)
    t_b, t_d, t_c = times["deapnn"], times["dense"], times["bare"]
    rate_b = population * samples / t_b
    rate_d = population * samples / t_d
    rate_c = population * samples / t_c
    live = int(np.count_nonzero(np.any(x.reshape(samples, -1) != 0, axis=0)))
    # the two ways give the same fitness
    np.testing.assert_allclose([f[0] for f in evaluator.evaluate_population(pop)],
                               [f[0] for f in dense.evaluate_population(pop)], atol=1e-5)

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
        "seconds": {"tutorial": t_a, "deapnn": t_b, "deapnn_dense": t_d, "bare": t_c},
        "rate": {"tutorial": rate_a, "deapnn": rate_b, "deapnn_dense": rate_d, "bare": rate_c},
        "deapnn_over_tutorial": rate_b / rate_a,
        "deapnn_over_bare": rate_b / rate_c,
        "deapnn_dense_over_bare": rate_d / rate_c,
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
    parser.add_argument("--out", type=Path, default=RESULTS / "weights_throughput.json")
    args = parser.parse_args()
    rows = [measure(h, args.population, n, args.repeats, args.tutorial_individuals)
            for h in args.hidden for n in args.samples]
    print(f"population {args.population}; rates in individuals x samples per second "
          f"(best of {args.repeats} timed calls; (b), (b'), (c) alternating)")
    print(f"{'network':<12}{'samples':>8}{'live px':>8}{'(a) tutorial':>14}{'(b) deapnn':>13}"
          f"{'(b) dense':>13}{'(c) bare':>13}{'b/a':>7}{'b/c':>6}{'bd/c':>6}")
    for r in rows:
        print(f"{r['network']:<12}{r['samples']:>8}{r['live_input_pixels']:>8}"
              f"{r['rate']['tutorial']:>14,.0f}{r['rate']['deapnn']:>13,.0f}"
              f"{r['rate']['deapnn_dense']:>13,.0f}{r['rate']['bare']:>13,.0f}"
              f"{r['deapnn_over_tutorial']:>6.0f}x{r['deapnn_over_bare']:>6.2f}"
              f"{r['deapnn_dense_over_bare']:>6.2f}   load {r['load_average_1min'][0]:.1f}-"
              f"{r['load_average_1min'][1]:.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
               "args": {k: str(v) for k, v in vars(args).items()}, "results": rows}
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
