"""Seed 003's synthetic task and far-coupled variants: evolution vs neural vs Evo-NAS vs random
search vs ``eaSimple`` with ``mut_resample`` / ``mut_learned``.

The task: ``n`` decisions ``a_i`` in ``{1..n}``; the reward couples consecutive decisions of a
*chain*, ``r = (n+1) / (c_1^2 + sum (c_{k+1}-c_k)^2 + (c_n-(n+1))^2)`` with ``c_k = a[order[k]]``,
maximum 1 (:class:`deapnn.hparams.evonas.ChainReward`). Variants (``--variant``):

* ``chain`` -- ``order = 0..n-1``: seed 003's task, neighbours coupled;
* ``far`` -- ``order = 0, m, 1, m+1, ...`` (``m = ceil(n/2)``): every coupled pair is about
  ``n/2`` decisions apart in the sequence the agents decide;
* ``permuted`` -- a random permutation (``numpy.random.default_rng(1000 + n)``): couplings at
  random distances.

Agents: the three DEAP strategies of :mod:`deapnn.hparams.evonas` driven by DEAP's
unmodified ``eaGenerateUpdate`` (every generated individual counts, duplicates included), uniform
random search, and DEAP's unmodified ``eaSimple`` on ``deapnn.make_toolbox`` toolboxes with
``mutate="resample"`` and ``mutate="learned"`` (distinct evaluations count: the toolbox's
cache answers duplicates). Reports the mean best reward after N individuals over seeds.

To reproduce (about 1-4 min per call on a shared 2-core machine)::

    python benchmarks/evonas_synthetic.py --n 10 --variant chain --seeds 20
    python benchmarks/evonas_synthetic.py --n 20 --variant far --seeds 20

``--controller table|recurrent`` picks the controller of neural, Evo-NAS and mut_learned. Settings are
chosen on seeds disjoint from the reported ones (``--first-seed 1000``); the reported tables use seeds
0-19. Evolution and Evo-NAS share their random numbers (same seed: the same initial population, and
Evo-NAS draws every proposal as evolution does, so it departs from evolution only where its controller
has learned something); the script prints, at every N >= 250, the paired mean difference Evo-NAS minus
the better of evolution and the neural agent with its standard error over the seeds, and stores each
agent's per-seed values at the checkpoints (``per_seed``) in the JSON.

Runs are deterministic given the seed, so after a change to one agent only that agent (and evolution,
the paired rival) need rerunning: ``--agents evolution evo-nas --keep-rows`` copies the other rows from
the previous results file, after checking it was made with the same seeds and settings.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from deap import algorithms, base, creator

import deapnn
from deapnn.hparams.evonas import ChainReward, EvoNASAgent, EvolutionAgent, NeuralAgent, far_order, synthetic_space
from deapnn.hparams.learned import LearnedMutation

RESULTS = Path(__file__).parent / "results"
AGENTS = ["evolution", "neural", "evo-nas", "random", "eaSimple+resample", "eaSimple+learned"]
CHECKPOINTS = (100, 250, 500, 1000, 2000, 3000, 5000, 10000)


def chain_order(variant: str, n: int) -> list[int]:
    if variant == "chain":
        return list(range(n))
    if variant == "far":
        return far_order(n)
    if variant == "permuted":
        return [int(i) for i in np.random.default_rng(1000 + n).permutation(n)]
    raise ValueError(f"unknown variant {variant!r}")


class _Spent(Exception):
    """The budget is spent: stops ``eaSimple`` from inside ``evaluate``."""


class Recorder:
    """Best reward so far after every evaluation it is asked for."""

    def __init__(self, reward: ChainReward, budget: int) -> None:
        self.reward, self.budget = reward, budget
        self.curve: list[float] = []

    def __call__(self, genome):
        if len(self.curve) >= self.budget:
            raise _Spent
        fit = self.reward(genome)
        self.curve.append(max(fit[0], self.curve[-1] if self.curve else 0.0))
        return fit


def run_agent(name: str, n: int, order: list[int], budget: int, seed: int, args) -> list[float]:
    deapnn.seed(seed)
    space = synthetic_space(n)
    rng = np.random.default_rng(seed)
    recorder = Recorder(ChainReward(order), budget)
    common = dict(lambda_=args.lambda_, rng=rng)
    learner = dict(training=args.training, queue_size=args.queue, learning_rate=args.lr, controller=args.controller,
                   entropy=args.entropy)
    explore = {"explore": args.explore}
    if name == "random":
        for _ in range(budget):
            recorder([int(x) for x in rng.integers(1, n + 1, size=n)])
        return recorder.curve
    if name.startswith("eaSimple"):
        mutate_kwargs = {"indpb": args.indpb or 1.0 / n}
        if name.endswith("learned"):
            mutate_kwargs["learner"] = LearnedMutation(space, **learner, **explore)
        toolbox = deapnn.make_toolbox(space, recorder, mate=args.mate,
                                      mutate="learned" if name.endswith("learned") else "resample",
                                      mutate_kwargs=mutate_kwargs)
        population = toolbox.population(n=args.population)
        try:
            algorithms.eaSimple(population, toolbox, cxpb=args.cxpb, mutpb=args.mutpb, ngen=10 * budget,
                                verbose=False)
        except _Spent:
            pass
        return recorder.curve
    if name == "evolution":
        agent = EvolutionAgent(space, args.population, args.sample, args.p_mutate, **common)
    elif name == "neural":
        agent = NeuralAgent(space, **learner, **common)
    else:
        agent = EvoNASAgent(space, args.population, args.sample, args.p_mutate, **learner, **explore, **common)
    toolbox = base.Toolbox()
    toolbox.register("evaluate", recorder)
    toolbox.register("generate", agent.generate, creator.Genome)
    toolbox.register("update", agent.update)
    algorithms.eaGenerateUpdate(toolbox, ngen=budget // args.lambda_, verbose=False)
    return recorder.curve


def _mean(row: dict, c: int) -> float:
    return row["mean"][c] if c in row["mean"] else row["mean"][str(c)]


def _keep_rows(out: Path, args, rows: dict) -> list[str]:
    """Copy into ``rows`` the rows of the agents not run now from the previous results ``out``
    (``--keep-rows``: their code did not change, and runs are deterministic given the seed), after
    checking that it was made with the same seeds and settings. Returns the names copied."""
    if not out.exists():
        raise SystemExit(f"--keep-rows: no previous results at {out}")
    previous = json.loads(out.read_text())
    same = ("n", "variant", "budget", "seeds", "first_seed", "lambda_", "population", "sample", "p_mutate",
            "controller", "lr", "training", "entropy", "explore", "queue", "mate", "cxpb", "mutpb", "indpb")
    differ = [k for k in same if previous["args"].get(k) != getattr(args, k)]
    if differ:
        raise SystemExit(f"--keep-rows: the previous results in {out} differ in {differ}")
    kept = [name for name in AGENTS if name not in rows and name in previous["results"]]
    for name in kept:
        rows[name] = previous["results"][name]
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10, help="number of decisions")
    parser.add_argument("--variant", choices=["chain", "far", "permuted"], default="chain")
    parser.add_argument("--budget", type=int, default=2000, help="individuals per run")
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed+seeds-1 (tune on 1000+, report on 0+)")
    parser.add_argument("--agents", nargs="+", default=AGENTS, choices=AGENTS)
    parser.add_argument("--lambda", dest="lambda_", type=int, default=10)
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--sample", type=int, default=10)
    parser.add_argument("--p-mutate", type=float, default=None)
    parser.add_argument("--controller", choices=["table", "recurrent"], default="recurrent")
    parser.add_argument("--lr", type=float, default=None,
                        help="controller learning rate (default: per agent and controller, "
                             "deapnn.hparams.evonas.LEARNING_RATES / EVONAS_LEARNING_RATES)")
    parser.add_argument("--training", choices=["pqt", "reinforce"], default="pqt")
    parser.add_argument("--entropy", type=float, default=0.0, help="controller entropy bonus")
    parser.add_argument("--explore", type=float, default=0.5,
                        help="uniform resampling mixed into Evo-NAS / mut_learned proposals")
    parser.add_argument("--queue", type=int, default=10, help="PQT queue size")
    parser.add_argument("--mate", default="one_point", help="eaSimple crossover")
    parser.add_argument("--cxpb", type=float, default=0.5)
    parser.add_argument("--mutpb", type=float, default=0.5)
    parser.add_argument("--indpb", type=float, default=None, help="eaSimple mutation indpb (default 1/n)")
    parser.add_argument("--keep-rows", action="store_true",
                        help="copy the rows of the agents not in --agents from the previous results file "
                             "(same seeds and settings; for agents whose code did not change)")
    parser.add_argument("--out", type=Path, default=None,
                        help="default results/evonas_synthetic_<variant>_n<n>.json (and .png)")
    args = parser.parse_args()
    out = args.out or RESULTS / f"evonas_synthetic_{args.variant}_n{args.n}.json"
    order = chain_order(args.variant, args.n)

    checkpoints = [c for c in CHECKPOINTS if c <= args.budget]
    curves: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for name in args.agents:
        start = time.perf_counter()
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        curves[name] = np.array([run_agent(name, args.n, order, args.budget, s, args) for s in seeds])
        seconds[name] = time.perf_counter() - start

    print(f"variant {args.variant} (chain order {order}), n={args.n}, controller {args.controller}, "
          f"seeds {args.first_seed}-{args.first_seed + args.seeds - 1}: mean (± std) best reward after N "
          f"individuals; optimum = 1")
    print("| agent | " + " | ".join(f"N={c}" for c in checkpoints) + " | solved | seconds |")
    print("|---|" + "---|" * (len(checkpoints) + 2))
    rows = {}
    for name in args.agents:
        at = {c: curves[name][:, c - 1] for c in checkpoints}
        solved = float(np.mean(curves[name][:, -1] >= 1.0 - 1e-12))
        rows[name] = {"mean": {c: float(v.mean()) for c, v in at.items()},
                      "std": {c: float(v.std()) for c, v in at.items()},
                      "se": {c: float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None for c, v in at.items()},
                      "per_seed": {c: [float(x) for x in v] for c, v in at.items()},
                      "solved": solved,
                      "seconds": seconds[name]}
        print(f"| {name} | " + " | ".join(f"{at[c].mean():.3f} ± {at[c].std():.2f}" for c in checkpoints)
              + f" | {solved:.0%} | {seconds[name]:.0f} |")
    kept = _keep_rows(out, args, rows) if args.keep_rows else []
    for name in kept:
        row = rows[name]
        print(f"| {name} (kept) | " + " | ".join(f"{row['mean'][str(c)]:.3f} ± {row['std'][str(c)]:.2f}"
                                                  for c in checkpoints) + f" | {row['solved']:.0%} | - |")
    target, margins = {}, {}
    if {"evolution", "neural", "evo-nas"} <= set(rows) and "evo-nas" in curves:
        for c in (c for c in checkpoints if c >= 250):
            rival = max(("evolution", "neural"), key=lambda a: _mean(rows[a], c))
            if rival not in curves:
                raise SystemExit(f"the rival at N={c} is {rival}, whose row was kept: rerun it for a paired margin")
            # paired over seeds (same seed, same initial population): mean and standard error of the difference
            diff = curves["evo-nas"][:, c - 1] - curves[rival][:, c - 1]
            se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else float("nan")
            target[c] = bool(diff.mean() >= 0)
            margins[c] = {"rival": rival, "difference": float(diff.mean()), "se": se}
        print("Evo-NAS - max(evolution, neural) at N>=250 (paired mean ± standard error): "
              + ", ".join(f"{c}: {m['difference']:+.3f} ± {m['se']:.3f} vs {m['rival']}"
                          f" ({'yes' if target[c] else 'NO'})" for c, m in margins.items()))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                               "order": order, "results": rows, "rows_kept_from_previous_run": kept,
                               "evonas_target": {str(c): ok for c, ok in target.items()},
                               "evonas_margin": {str(c): m for c, m in margins.items()}}, indent=1))
    try:
        from deapnn.core.plotting import _pyplot

        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, 4))
        x = np.arange(1, args.budget + 1)
        for name in args.agents:
            ax.plot(x, curves[name].mean(axis=0), label=name)
        for name in kept:  # only their means at the checkpoints were kept
            ax.plot(checkpoints, [_mean(rows[name], c) for c in checkpoints], "o--", label=f"{name} (kept)")
        ax.set_xscale("log")
        ax.set_xlabel("individuals (eaSimple: distinct evaluations)")
        ax.set_ylabel(f"best reward (mean of {args.seeds} seeds)")
        ax.set_title(f"Evo-NAS synthetic task, {args.variant}, n={args.n}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out.with_suffix(".png"), dpi=100)
    except Exception as err:  # the figure is a convenience; the table and JSON are the result
        print(f"no plot: {err}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
