"""Seed 000's polynomial fit, evolved by DEAP's unmodified ``eaSimple`` on a deapnn toolbox.

To reproduce: ``python benchmarks/polynomial.py --seed 0``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from deap import algorithms, tools

import deapnn
from deapnn.hparams.problems import PolynomialFit

RESULTS = Path(__file__).parent / "results"


def run(seed: int = 0, population: int = 100, ngen: int = 60, coefficients=(1.5, -2.0, 0.5)) -> dict:
    """Evolve (a, b, c) and return the best genome, its error and the run's counters."""
    deapnn.seed(seed)
    problem = PolynomialFit(coefficients)
    toolbox = deapnn.make_toolbox(
        PolynomialFit.space(), problem, mate="convex", mutate="convex", mutate_kwargs={"indpb": 0.3}
    )
    hof = tools.HallOfFame(1)
    start = time.perf_counter()
    pop = toolbox.population(n=population)
    pop, logbook = algorithms.eaSimple(
        pop, toolbox, cxpb=0.6, mutpb=0.3, ngen=ngen, stats=deapnn.fitness_stats(), halloffame=hof, verbose=False
    )
    best = hof[0]
    return {
        "seed": seed,
        "population": population,
        "ngen": ngen,
        "true": dict(zip("abc", coefficients)),
        "best": best.as_dict(),
        "mse": -best.fitness.values[0],
        "max_abs_error": max(abs(best[n] - c) for n, c in zip("abc", coefficients)),
        "evaluations": toolbox.cache.misses,
        "cache_hits": toolbox.cache.hits,
        "seconds": time.perf_counter() - start,
        "logbook": [dict(r) for r in logbook],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--population", type=int, default=100)
    parser.add_argument("--ngen", type=int, default=60)
    parser.add_argument("--out", type=Path, default=RESULTS / "polynomial.json")
    args = parser.parse_args()
    result = run(args.seed, args.population, args.ngen)
    print(f"{'gene':<6}{'true':>10}{'found':>12}")
    for name in "abc":
        print(f"{name:<6}{result['true'][name]:>10.4f}{result['best'][name]:>12.4f}")
    print(f"MSE {result['mse']:.3g}, max |error| {result['max_abs_error']:.4f}, "
          f"{result['evaluations']} evaluations ({result['cache_hits']} cache hits), {result['seconds']:.2f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
