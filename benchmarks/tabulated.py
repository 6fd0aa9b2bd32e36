"""GA vs random search vs brute force on the tabulated digits MLP space.

Every network of the space was trained once by ``make_digits_table.py``; here ``evaluate``
looks the score up in that table, so a search costs nothing but bookkeeping and can be
repeated over many seeds. The cost of a search is its number of *distinct* evaluations
(cache misses: a genome the evaluation cache has seen, or one with the same canonical key,
costs nothing). For each seed we record how many evaluations each method needs before it
first evaluates the best network and a top-1% network:

* GA - DEAP's unmodified ``eaSimple`` or ``eaMuPlusLambda`` (``--algorithm``) on a
  ``deapnn.make_toolbox`` toolbox whose evaluate is the table lookup wrapped in the evaluation
  cache (``novel=True``: a child that duplicates a seen network is mutated again, so every
  evaluation is a new network). Its random initial population (``--initial`` for
  eaMuPlusLambda, which keeps the ``mu`` best of it; eaSimple's ``--population``) is random
  search. The tuned default is a (1 + 2) hill climber: ``eaMuPlusLambda`` with mu 1, lambda 2,
  no crossover, one-gene mutation, started from the better of 2 random networks;
* random search - ``deapnn.hparams.baselines.random_search`` (with ``--patience`` it is also run as
  the seed's "give up after N evaluations without improvement" search);
* brute force - ``deapnn.hparams.baselines.brute_force`` in grid order (DeepEvolve's ``brute.py``,
  the same for every seed) and in a shuffled order per seed. Brute force only *knows* it has
  the best after evaluating the whole space.

The GA's settings are chosen with ``--tune``: every setting of :data:`TUNING_GRID` is run on
the tuning seeds (1000-1099; seeds below 1000 are refused, they are the measurement seeds), each
run stopped at its first top-1% network, and ranked by the median number of evaluations to it
(ties: upper quartile). The defaults of this script are the winner. The report gives the ratio
of random search's median to the GA's with a 90% bootstrap interval over the seeds.

``--mutate screened`` replaces the hill climber's mutation by deapnn's surrogate-screened mutation
(:mod:`deapnn.hparams.screened`): each child is the best of ``--screen-k`` candidate mutants
(``--screen-base``) under one posterior draw (scaled by ``--explore``) of a model of the gene
values fitted on every network the run's evaluation cache holds; the candidates cost no
evaluations. The model is ``--screen-model``: ``ridge`` (Bayesian ridge on one-hot gene values) or
``gp`` (a Gaussian process whose categorical kernel mixes ``--additive`` main effects,
``--pairwise`` interactions and a local ``exp(-differing genes / --lengthscale)`` term, with noise
variance ``--noise``); ``--acquisition`` ranks the candidates by the draw (``thompson``), by mean +
``--explore`` sd (``ucb``) or by expected improvement (``ei``). ``--tune screened`` ranks the
settings of :data:`SCREENED_GRID` (on the tuned hill climber) instead of :data:`TUNING_GRID`.
Tuned on seeds >= 1000, the screened mutation with :data:`TUNED_SURROGATE` (a GP with the additive
kernel and noise 1: the ridge's main effects, shrunk more) is the script's default (``--mutate
one_gene`` gives the plain hill climber, ``--screen-model ridge`` the first screened setting,
whose results are kept in ``results/tabulated_screened_ridge.json``).

To reproduce: ``python benchmarks/tabulated.py --seeds 100``
(tuning: ``python benchmarks/tabulated.py --tune --first-seed 1000 --seeds 100``; the screened
mutation: ``python benchmarks/tabulated.py --tune screened --first-seed 1000 --seeds 100``)
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from deap import algorithms

import deapnn
from deapnn.hparams import baselines, operators
from deapnn.hparams.screened import ACQUISITIONS, MODELS, ScreenedMutation
from deapnn.hparams.space import SearchSpace

TABLE = Path(__file__).parent / "data" / "digits_mlp_table.json"
RESULTS = Path(__file__).parent / "results"


#: Seeds below this are the measurement seeds; ``--tune`` refuses them.
FIRST_TUNING_SEED = 1000

#: eaMuPlusLambda's default ``--initial`` (the tuned value).
DEFAULT_INITIAL = 2

#: GA settings ``--tune`` compares (each combined with ``--mate``, ``--indpb``):
#: ``(algorithm, initial population, population (mu), lambda, select, tournsize, mutate, cxpb,
#: mutpb)``; ``initial`` None means the population size. The first 26 are the settings of the
#: previous tuning (cxpb = mutpb = 0.5); then eaMuPlusLambda without crossover (every child a
#: one-gene or resample mutant), including mu = 1 (an elitist (1 + lambda) hill climber started
#: from the best of a random initial population of 1-8).
TUNING_GRID: list[tuple[str, int | None, int, int | None, str, int | None, str, float, float]] = [
    *[("simple", None, pop, None, "tournament", ts, mut, 0.5, 0.5)
      for pop, ts, mut in itertools.product((4, 8), (2, 3), ("one_gene", "resample"))],
    *[("mu+lambda", None, mu, lam, "best", None, mut, 0.5, 0.5)
      for mu, lam, mut in itertools.product((2, 4, 8), (1, 2, 4), ("one_gene", "resample"))],
    *[("mu+lambda", init, mu, lam, "best", None, mut, 0.0, 1.0)
      for init, mu, lam, mut in itertools.product((1, 2, 4, 8), (1, 2, 4), (1, 2, 4),
                                                  ("one_gene", "resample"))
      if init >= mu],
]


#: The surrogate knobs of :class:`deapnn.hparams.screened.ScreenedMutation` this script sets, as
#: ``ScreenedMutation keyword -> (command-line flag, default)``.
SURROGATE_KNOBS: dict[str, tuple[str, Any]] = {
    "model": ("--screen-model", "ridge"), "acquisition": ("--acquisition", "thompson"),
    "alpha": ("--alpha", 1.0), "lengthscale": ("--lengthscale", 2.0), "noise": ("--noise", 0.5),
    "additive": ("--additive", 0.0), "pairwise": ("--pairwise", 0.0)}

#: The script's surrogate (tuned): a Gaussian process with the additive kernel only and noise
#: variance 1 -- main effects of the gene values, more strongly shrunk than the ridge's.
TUNED_SURROGATE: dict[str, Any] = {"model": "gp", "additive": 1.0, "noise": 1.0}


def _knob_attr(keyword: str) -> str:
    """The ``argparse`` attribute of a surrogate knob (``model`` is ``screen_model``)."""
    return SURROGATE_KNOBS[keyword][0].lstrip("-").replace("-", "_")


#: Surrogate-screened mutation settings ``--tune screened`` compares, each on the tuned
#: hill climber (eaMuPlusLambda 1 + 2, initial 2, no crossover): ``(k, base mutation, base indpb,
#: explore, surrogate knobs)``, the knobs a dict of :data:`SURROGATE_KNOBS` keywords (the rest
#: their defaults; see :class:`deapnn.hparams.screened.ScreenedMutation`). The first 18 are the
#: first tuning (the ridge model); then ridge variants (explore, alpha, k, UCB / EI) and Gaussian
#: processes (local, additive, pairwise kernels), all with 64 candidates from resample 0.3.
SCREENED_GRID: list[tuple[int, str, float | None, float, dict[str, Any]]] = [
    *[(k, base, indpb, explore, {"model": "ridge"})
      for k, (base, indpb), explore in itertools.product(
          (16, 64), (("one_gene", None), ("resample", 0.3), ("resample", 0.5)), (0.25, 0.5, 1.0))],
    *[(64, "resample", 0.3, explore, {"model": "ridge", **knobs}) for explore, knobs in [
        (0.1, {}), (0.0, {}), (0.25, {"alpha": 0.3}), (0.25, {"alpha": 3.0}),
        (0.5, {"acquisition": "ucb"}), (1.0, {"acquisition": "ucb"}), (1.0, {"acquisition": "ei"})]],
    (128, "resample", 0.3, 0.25, {"model": "ridge"}),
    *[(64, "resample", 0.3, explore, {"model": "gp", **knobs}) for explore, knobs in [
        (0.25, {"lengthscale": 0.5, "noise": 0.1}), (1.0, {"lengthscale": 0.5, "noise": 0.1}),
        (0.25, {"lengthscale": 2.0, "noise": 0.5}),
        (0.25, {"additive": 0.7, "lengthscale": 1.0, "noise": 0.3}),
        (0.25, {"additive": 0.9, "lengthscale": 1.0, "noise": 0.3}),
        (0.25, {"additive": 0.8, "lengthscale": 0.5, "noise": 0.3}),
        (0.25, {"additive": 1.0, "noise": 0.1}), (0.25, {"additive": 1.0, "noise": 0.3}),
        (0.25, {"additive": 1.0, "noise": 1.0}), (0.1, {"additive": 1.0, "noise": 0.3}),
        (0.5, {"additive": 1.0, "noise": 0.3}), (0.5, {"additive": 1.0, "noise": 0.3, "acquisition": "ucb"}),
        (0.25, {"additive": 0.5, "pairwise": 0.5, "noise": 0.3}),
        (0.25, {"additive": 0.5, "pairwise": 0.5, "noise": 1.0}),
        (0.25, {"additive": 0.7, "pairwise": 0.3, "noise": 1.0}),
        (0.25, {"additive": 0.3, "pairwise": 0.7, "noise": 1.0}),
        (0.25, {"additive": 0.4, "pairwise": 0.4, "lengthscale": 1.0, "noise": 1.0})]],
]


def _cli_default(keyword: str) -> Any:
    """The command line's default of a surrogate knob: :data:`TUNED_SURROGATE`'s, else
    :class:`~deapnn.hparams.screened.ScreenedMutation`'s."""
    return TUNED_SURROGATE.get(keyword, SURROGATE_KNOBS[keyword][1])


def make_screen(space: SearchSpace, args: argparse.Namespace) -> ScreenedMutation:
    """The :class:`ScreenedMutation` of ``--mutate screened``: ``--screen-k`` candidates made by
    ``--screen-base`` (``resample`` with ``--screen-indpb``), ranked by the ``--screen-model``
    surrogate's ``--acquisition`` (spread scaled by ``--explore``); ``args`` without a surrogate
    knob take its default."""
    base = (operators.mut_one_gene if args.screen_base == "one_gene"
            else functools.partial(operators.mut_resample, indpb=args.screen_indpb))
    knobs = {key: getattr(args, _knob_attr(key), default)
             for key, (_, default) in SURROGATE_KNOBS.items()}
    return ScreenedMutation(space, k=args.screen_k, mutate=base, explore=args.explore, **knobs)


class TargetReached(Exception):
    """Raised by :class:`TableLookup` (with ``stop_at``) to end a tuning run at its first hit."""


class TableLookup:
    """``evaluate`` for the tabulated space: ``genome -> (accuracy,)`` by canonical key.

    Every call is a real (distinct, once cached) evaluation; :attr:`trace` keeps the scores in
    call order, so the cost of reaching a score is its position in the trace. With ``stop_at``,
    a score at or above it raises :class:`TargetReached` after being recorded (tuning only
    needs the first hit).
    """

    def __init__(self, space: SearchSpace, scores: dict[tuple, float],
                 stop_at: float | None = None) -> None:
        self.space = space
        self.scores = scores
        self.stop_at = stop_at
        self.trace: list[float] = []

    def __call__(self, genome: Any) -> tuple[float]:
        score = self.scores[genome.key()]
        self.trace.append(score)
        if self.stop_at is not None and score >= self.stop_at:
            raise TargetReached(score)
        return (score,)


def load_table(path: Path = TABLE) -> tuple[SearchSpace, dict[tuple, float], dict]:
    """The table's space, ``{canonical key: accuracy}`` and raw JSON."""
    raw = json.loads(Path(path).read_text())
    space = SearchSpace.from_dict(raw["space"])
    scores = {}
    for entry in raw["entries"]:  # genomes are stored canonicalised: their values are the key
        key = tuple(entry["genome"][name] for name in space.names)
        scores[key] = entry["accuracy"] if entry["accuracy"] is not None else 0.0
    return space, scores, raw


def first_reach(trace: list[float], target: float) -> float:
    """1-based evaluation count at which ``trace`` first reaches ``target``; inf if never."""
    for i, score in enumerate(trace, start=1):
        if score >= target:
            return i
    return math.inf


def generations(args: argparse.Namespace, n_distinct: int) -> int:
    """``--ngen``, or by default enough generations to evaluate every distinct network once:
    ``ceil(n_distinct / offspring per generation)`` (``lambda`` for mu+lambda, else the
    population)."""
    if args.ngen is not None:
        return args.ngen
    per_generation = args.lambda_ if args.algorithm == "mu+lambda" else args.population
    return math.ceil(n_distinct / per_generation)


def initial_size(args: argparse.Namespace) -> int:
    """The size of the random initial population: for eaMuPlusLambda ``--initial`` (it keeps the
    ``mu`` best of it after the first generation) if set, else (and for eaSimple, whose
    population keeps its size) ``--population``."""
    initial = getattr(args, "initial", None)
    return args.population if initial is None or args.algorithm != "mu+lambda" else initial


def run_ga(space: SearchSpace, scores: dict, seed: int, args: argparse.Namespace,
           stop_at: float | None = None) -> list[float]:
    """One GA run (DEAP's ``eaSimple`` or ``eaMuPlusLambda``, unchanged); returns the trace of
    distinct evaluations, cut at the first score >= ``stop_at`` if given. The initial population
    (:func:`initial_size` random genomes) is evaluated first: it is random search."""
    deapnn.seed(seed)
    lookup = TableLookup(space, scores, stop_at=stop_at)
    select_kwargs = {"tournsize": args.tournsize} if args.select == "tournament" else {}
    if args.mutate == "screened":
        mutate_kwargs = {"screen": make_screen(space, args)}
    else:
        mutate_kwargs = {} if args.mutate == "one_gene" else {"indpb": args.indpb}
    toolbox = deapnn.make_toolbox(space, lookup, mate=args.mate, mutate=args.mutate,
                                  mutate_kwargs=mutate_kwargs,
                                  select=args.select, select_kwargs=select_kwargs, novel=args.novel)
    population = toolbox.population(n=initial_size(args))
    ngen = generations(args, len(scores))
    try:
        if args.algorithm == "mu+lambda":
            algorithms.eaMuPlusLambda(population, toolbox, mu=args.population, lambda_=args.lambda_,
                                      cxpb=args.cxpb, mutpb=args.mutpb, ngen=ngen, verbose=False)
        else:
            algorithms.eaSimple(population, toolbox, cxpb=args.cxpb, mutpb=args.mutpb, ngen=ngen,
                                verbose=False)
    except TargetReached:
        return lookup.trace
    assert toolbox.cache.misses == len(lookup.trace)
    return lookup.trace


def run_random(space: SearchSpace, scores: dict, seed: int, patience: int | None) -> list[float]:
    lookup = TableLookup(space, scores)
    baselines.random_search(lookup, space, patience=patience,
                            max_evaluations=None if patience else len(scores),
                            rng=random.Random(seed))
    return lookup.trace


def run_brute(space: SearchSpace, scores: dict, seed: int | None) -> list[float]:
    lookup = TableLookup(space, scores)
    baselines.brute_force(lookup, space, shuffle=seed is not None,
                          rng=random.Random(seed) if seed is not None else None)
    return lookup.trace


def summary(values: list[float]) -> dict[str, Any]:
    a = np.asarray(values, dtype=float)
    never = 1e18  # "never reached" sorts last; a quartile that falls there is reported as None
    q1, median, q3 = np.percentile(np.where(np.isfinite(a), a, never), [25, 50, 75])

    def num(x):
        return None if x >= never / 2 else float(x)

    return {"q1": num(q1), "median": num(median), "q3": num(q3),
            "reached": int(np.isfinite(a).sum()), "runs": len(a)}


def bootstrap_ratio(numerator: list[float], denominator: list[float], resamples: int = 2000,
                    level: float = 0.9, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``median(numerator) / median(denominator)``: each
    resample draws the seeds of each method again, with replacement and independently (the two
    methods' runs are independent). Runs that never got there count as the largest value.
    Randomness: ``numpy.random.default_rng(seed)``."""
    never = 1e18
    a = np.where(np.isfinite(numerator), numerator, never)
    b = np.where(np.isfinite(denominator), denominator, never)
    rng = np.random.default_rng(seed)
    ratios = (np.median(rng.choice(a, (resamples, len(a))), axis=1)
              / np.median(rng.choice(b, (resamples, len(b))), axis=1))
    low, high = np.percentile(ratios, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def ga_row(args: argparse.Namespace) -> str:
    """The GA's row name in the results: ``"GA (eaSimple)"`` or ``"GA (eaMuPlusLambda)"``."""
    return "GA (eaMuPlusLambda)" if args.algorithm == "mu+lambda" else "GA (eaSimple)"


def command_line(args: argparse.Namespace) -> str:
    """The command that reruns ``args`` (every setting spelled out)."""
    words = ["python", "benchmarks/tabulated.py"]
    for key, value in vars(args).items():
        flag = "--" + ("lambda" if key == "lambda_" else key.replace("_", "-"))
        if key in ("out", "table") or value is None:
            continue
        if isinstance(value, bool):
            if key == "novel":
                words.append(flag if value else "--no-novel")
            elif value:
                words.append(flag)
        else:
            words += [flag, str(value)]
    return " ".join(words)


def thresholds(scores: dict) -> tuple[float, float]:
    """The best score and the top-1% threshold (the ``ceil(1% of n)``-th best score)."""
    ranked = sorted(scores.values(), reverse=True)
    return ranked[0], ranked[max(1, math.ceil(0.01 * len(ranked))) - 1]


def tune(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run every setting of :data:`TUNING_GRID` (``--tune screened``: of :data:`SCREENED_GRID`) on
    the seeds, each run stopped at its first top-1% network; print them ranked by median (then
    upper quartile) and write ``args.out``."""
    space, scores, _ = load_table(args.table)
    _, top1 = thresholds(scores)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    start = time.perf_counter()
    rows = []
    if args.tune == "screened":  # the hill climber with each screened mutation of SCREENED_GRID
        grid = [("mu+lambda", DEFAULT_INITIAL, 1, 2, "best", None, "screened", 0.0, 1.0, screen)
                for screen in SCREENED_GRID]
    else:
        grid = [(*setting, None) for setting in TUNING_GRID]
    for algorithm, initial, population, lambda_, select, tournsize, mutate, cxpb, mutpb, screen in grid:
        run_args = argparse.Namespace(**{**vars(args), "algorithm": algorithm, "initial": initial,
                                         "population": population,
                                         "lambda_": lambda_ or args.lambda_, "select": select,
                                         "tournsize": tournsize or args.tournsize, "mutate": mutate,
                                         "cxpb": cxpb, "mutpb": mutpb})
        if screen is not None:
            run_args.screen_k, run_args.screen_base, run_args.screen_indpb, run_args.explore, knobs = screen
            for key, (_, default) in SURROGATE_KNOBS.items():
                setattr(run_args, _knob_attr(key), knobs.get(key, default))
        hits = [first_reach(run_ga(space, scores, s, run_args, stop_at=top1), top1) for s in seeds]
        settings = {"algorithm": algorithm, "initial": initial_size(run_args),
                    "population": population, "lambda": lambda_,
                    "select": select, "tournsize": tournsize, "mutate": mutate,
                    "indpb": args.indpb if mutate not in ("one_gene", "screened") else None,
                    "mate": args.mate, "cxpb": cxpb, "mutpb": mutpb, "novel": args.novel,
                    "ngen": generations(run_args, len(scores))}
        if screen is not None:
            settings.update(screen_k=run_args.screen_k, screen_base=run_args.screen_base,
                            screen_indpb=run_args.screen_indpb, explore=run_args.explore,
                            **{_knob_attr(key): getattr(run_args, _knob_attr(key))
                               for key in SURROGATE_KNOBS})
        rows.append({"settings": settings, "top1": summary(hits)})

    def rank(row):
        s = row["top1"]
        return (s["median"] if s["median"] is not None else math.inf,
                s["q3"] if s["q3"] is not None else math.inf)

    rows.sort(key=rank)
    print(f"tuning on seeds {seeds.start}-{seeds.stop - 1}: evaluations to the first top-1% "
          f"network, median [q1, q3] (runs that got there)\n")
    width = 130 if args.tune == "screened" else 58
    for row in rows:
        st, s = row["settings"], row["top1"]
        name = (f"eaSimple pop {st['population']}, tournament {st['tournsize']}"
                if st["algorithm"] == "simple" else
                f"eaMuPlusLambda {st['population']}+{st['lambda']} (initial {st['initial']}), best")
        name += f", cxpb {st['cxpb']:g}"
        if st["mutate"] == "screened":
            name += (f", k {st['screen_k']} {st['screen_base']}"
                     + (f" {st['screen_indpb']:g}" if st["screen_indpb"] is not None else "")
                     + f", explore {st['explore']:g}, {st['screen_model']} {st['acquisition']}"
                     + (f" alpha {st['alpha']:g}" if st["screen_model"] == "ridge" else
                        f" l {st['lengthscale']:g} n {st['noise']:g} add {st['additive']:g}"
                        f" pair {st['pairwise']:g}"))
        q3 = "never" if s["q3"] is None else f"{s['q3']:.0f}"
        med = "never" if s["median"] is None else f"{s['median']:.1f}"
        print(f"{name:<{width}}{st['mutate']:<10}{med:>7} [{s['q1']:.0f}, {q3}] ({s['reached']}/{s['runs']})")
    report = {"command": command_line(args),
              "seeds": [seeds.start, seeds.stop - 1], "top1_threshold": top1, "ranked": rows,
              "seconds": time.perf_counter() - start}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds are first-seed, ..., first-seed + seeds - 1")
    parser.add_argument("--algorithm", default="mu+lambda", choices=["simple", "mu+lambda"],
                        help="DEAP's eaSimple or eaMuPlusLambda (mu = --population)")
    parser.add_argument("--population", type=int, default=1, help="population size (mu)")
    parser.add_argument("--initial", type=int, default=None,
                        help=f"eaMuPlusLambda: size of the random initial population, of which the "
                             f"mu best are kept (default the larger of {DEFAULT_INITIAL} and --population; "
                             f"eaSimple's is --population)")
    parser.add_argument("--lambda", dest="lambda_", type=int, default=2,
                        help="children per generation for mu+lambda")
    parser.add_argument("--ngen", type=int, default=None,
                        help="generations; default ceil(distinct networks / children per generation)")
    parser.add_argument("--cxpb", type=float, default=0.0)
    parser.add_argument("--mutpb", type=float, default=1.0)
    parser.add_argument("--indpb", type=float, default=0.2)
    parser.add_argument("--select", default="best", choices=["tournament", "best"])
    parser.add_argument("--tournsize", type=int, default=3)
    parser.add_argument("--mate", default="uniform", choices=["uniform", "one_point"])
    parser.add_argument("--mutate", default="screened",
                        choices=["resample", "one_gene", "perturb", "screened"],
                        help="screened: deapnn's surrogate-screened mutation (--screen-k, "
                             "--screen-base, --explore; with --tune: the settings of SCREENED_GRID)")
    parser.add_argument("--screen-k", type=int, default=64,
                        help="screened: candidate mutants per child")
    parser.add_argument("--screen-base", default="resample", choices=["one_gene", "resample"],
                        help="screened: the mutation that makes each candidate")
    parser.add_argument("--screen-indpb", type=float, default=0.3,
                        help="screened: indpb of --screen-base resample")
    parser.add_argument("--explore", type=float, default=0.25,
                        help="screened: scale of the surrogate's posterior draw (0: greedy)")
    parser.add_argument("--screen-model", default=_cli_default("model"), choices=list(MODELS),
                        help="screened: the surrogate (ridge: additive Bayesian ridge on one-hot gene "
                             "values; gp: Gaussian process with a categorical kernel)")
    parser.add_argument("--acquisition", default=_cli_default("acquisition"),
                        choices=list(ACQUISITIONS),
                        help="screened: how candidates are ranked (thompson: one posterior draw; "
                             "ucb: mean + explore * sd; ei: expected improvement)")
    parser.add_argument("--alpha", type=float, default=_cli_default("alpha"),
                        help="screened, ridge: prior precision of the gene-value effects")
    parser.add_argument("--lengthscale", type=float, default=_cli_default("lengthscale"),
                        help="screened, gp: kernel exp(-differing genes / lengthscale)")
    parser.add_argument("--noise", type=float, default=_cli_default("noise"),
                        help="screened, gp: observation noise variance (of unit-variance targets)")
    parser.add_argument("--additive", type=float, default=_cli_default("additive"),
                        help="screened, gp: weight of the additive (per-gene overlap) kernel")
    parser.add_argument("--pairwise", type=float, default=_cli_default("pairwise"),
                        help="screened, gp: weight of the pairwise-interaction kernel "
                             "(--additive + --pairwise <= 1; the rest is the local kernel)")
    parser.add_argument("--tune", nargs="?", const="grid", default=None, choices=["grid", "screened"],
                        help="rank the settings of TUNING_GRID (--tune, --tune grid) or of "
                             "SCREENED_GRID (--tune screened) on the seeds (>= 1000) instead")
    parser.add_argument("--novel", action=argparse.BooleanOptionalAction, default=True,
                        help="re-mutate children that duplicate an evaluated genome")
    parser.add_argument("--patience", type=int, default=25,
                        help="random search 'gives up' after this many evaluations "
                             "without improvement (reported separately)")
    parser.add_argument("--out", type=Path, default=None,
                        help="default results/tabulated_screened.json (--mutate screened, the default), "
                             "else results/tabulated.json; results/tabulated_tuning.json with --tune, "
                             "results/tabulated_screened_tuning.json with --tune screened")
    args = parser.parse_args()
    for flag, value, low in (("--seeds", args.seeds, 1), ("--population", args.population, 1),
                             ("--lambda", args.lambda_, 1), ("--tournsize", args.tournsize, 1),
                             ("--ngen", args.ngen, 0), ("--initial", args.initial, 1),
                             ("--screen-k", args.screen_k, 1)):
        if value is not None and value < low:
            parser.error(f"{flag} must be >= {low}, got {value}")
    for flag, value in (("--cxpb", args.cxpb), ("--mutpb", args.mutpb), ("--indpb", args.indpb),
                        ("--screen-indpb", args.screen_indpb)):
        if not 0.0 <= value <= 1.0:
            parser.error(f"{flag} must be in [0, 1], got {value}")
    if not (math.isfinite(args.explore) and args.explore >= 0):
        parser.error(f"--explore must be a finite number >= 0, got {args.explore}")
    for flag, value in (("--alpha", args.alpha), ("--lengthscale", args.lengthscale),
                        ("--noise", args.noise)):
        if not (math.isfinite(value) and value > 0):
            parser.error(f"{flag} must be a finite number > 0, got {value}")
    if not 0.0 <= args.additive <= 1.0:
        parser.error(f"--additive must be in [0, 1], got {args.additive}")
    if not (0.0 <= args.pairwise and args.additive + args.pairwise <= 1.0):
        parser.error(f"--pairwise must be >= 0 with --additive + --pairwise <= 1, got "
                     f"{args.additive} + {args.pairwise}")
    if args.algorithm == "mu+lambda":  # DEAP's varOr: one operator per child, two parents to mate
        if args.cxpb + args.mutpb > 1.0:
            parser.error(f"--cxpb + --mutpb must be <= 1 for mu+lambda, got {args.cxpb} + {args.mutpb}")
        if args.cxpb > 0 and args.population < 2:
            parser.error(f"--cxpb {args.cxpb} needs --population >= 2 (crossover takes two "
                         f"parents), got --population {args.population}")
        if args.initial is None:
            args.initial = max(DEFAULT_INITIAL, args.population)
    elif args.initial is not None and args.initial != args.population:
        parser.error(f"--initial {args.initial} is for mu+lambda; eaSimple's population is "
                     f"--population {args.population}")
    if args.tune and args.first_seed < FIRST_TUNING_SEED:
        parser.error(f"--tune uses seeds >= {FIRST_TUNING_SEED} (below are the measurement seeds), "
                     f"got --first-seed {args.first_seed}")
    if args.out is None:
        plain = "tabulated_screened.json" if args.mutate == "screened" else "tabulated.json"
        args.out = RESULTS / {None: plain, "grid": "tabulated_tuning.json",
                              "screened": "tabulated_screened_tuning.json"}[args.tune]
    if args.tune:
        tune(args)
        return

    space, scores, raw = load_table(args.table)
    ranked = sorted(scores.values(), reverse=True)
    n = len(ranked)
    best, top1 = thresholds(scores)
    n_best = sum(s >= best for s in ranked)
    n_top1 = sum(s >= top1 for s in ranked)
    start = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    traces = {ga_row(args): [run_ga(space, scores, s, args) for s in seeds],
              "random search": [run_random(space, scores, s, None) for s in seeds],
              "brute force, shuffled": [run_brute(space, scores, s) for s in seeds]}
    grid_trace = run_brute(space, scores, None)
    give_up = [run_random(space, scores, s, args.patience) for s in seeds]

    rows = {}
    for name, runs in traces.items():
        rows[name] = {"best": summary([first_reach(t, best) for t in runs]),
                      "top1": summary([first_reach(t, top1) for t in runs]),
                      "evaluations": summary([len(t) for t in runs])}
    rows["brute force, grid order"] = {
        "best": summary([first_reach(grid_trace, best)]),
        "top1": summary([first_reach(grid_trace, top1)]),
        "evaluations": summary([len(grid_trace)])}
    give_up_row = {"evaluations": summary([len(t) for t in give_up]),
                   "found_top1": int(sum(max(t) >= top1 for t in give_up)),
                   "found_best": int(sum(max(t) >= best for t in give_up)),
                   "final_best": summary([max(t) for t in give_up])}

    print(f"table: {raw['grid_size']} genomes on the grid, {n} distinct networks; best "
          f"{best:.4f} ({n_best} networks), top-1% threshold {top1:.4f} ({n_top1} networks); "
          f"{args.seeds} seeds")
    print("evaluations (distinct) until the first best / top-1% network: median [q1, q3] "
          "(runs that reached it)\n")

    def fmt(s):
        if s["median"] is None:
            return f"not reached ({s['reached']}/{s['runs']})"
        q3 = "never" if s["q3"] is None else f"{s['q3']:.0f}"
        return f"{s['median']:.0f} [{s['q1']:.0f}, {q3}] ({s['reached']}/{s['runs']})"

    print(f"{'method':<26}{'to best':>28}{'to top-1%':>28}{'total cost':>12}")
    for name, row in rows.items():
        total = row["evaluations"]["median"]
        print(f"{name:<26}{fmt(row['best']):>28}{fmt(row['top1']):>28}{total:>12.0f}")
    ga = rows[ga_row(args)]["top1"]["median"]
    ratios, interval = {}, None
    if ga:
        ratios = {
            "brute force (complete enumeration) / GA, top-1%": n / ga,
            "brute force grid order / GA, top-1%": first_reach(grid_trace, top1) / ga,
            "random search / GA, top-1%": (rows["random search"]["top1"]["median"] or math.inf) / ga,
        }
        interval = bootstrap_ratio([first_reach(t, top1) for t in traces["random search"]],
                                   [first_reach(t, top1) for t in traces[ga_row(args)]])
        print()
        for label, value in ratios.items():
            print(f"{label:<52}{value:6.1f}x")
        print(f"random search / GA, top-1%: 90% bootstrap interval {interval[0]:.2f}x - "
              f"{interval[1]:.2f}x (2000 resamples of the seeds)")
    print(f"\nrandom search giving up after {args.patience} evaluations without improvement: "
          f"median {give_up_row['evaluations']['median']:.0f} evaluations, found a top-1% "
          f"network in {give_up_row['found_top1']}/{args.seeds} runs, the best in "
          f"{give_up_row['found_best']}/{args.seeds}")
    report = {
        "command": command_line(args),
        "table": str(args.table), "distinct": n, "grid_size": raw["grid_size"],
        "best": best, "n_best": n_best, "top1_threshold": top1, "n_top1": n_top1,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": rows, "ratios": ratios,
        "random_search_over_ga_top1_bootstrap_90": list(interval) if interval else None,
        "random_search_give_up": give_up_row,
        "seconds": time.perf_counter() - start,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
