"""Evo-NAS on a real architecture space: the tabulated digits MLP table.

Every network of the space was trained once (``benchmarks/make_digits_table.py``); evaluation is
a table lookup (:mod:`benchmarks.tabulated`), so searches are free and repeatable over many
seeds. The cost of a search is its number of *distinct* evaluations (every toolbox here has
deapnn's evaluation cache; a genome seen before, or one with the same canonical key, is free).
For each seed we record how many evaluations each agent needs before it first evaluates a
top-1% network and the best network.

Agents: the DEAP strategies of :mod:`deapnn.hparams.evonas` (regularized evolution, the neural
agent, the Evo-NAS hybrid) under DEAP's unmodified ``eaGenerateUpdate``; uniform random search
(:func:`deapnn.hparams.baselines.random_search`); and DEAP's unmodified ``eaSimple`` on
``deapnn.make_toolbox`` toolboxes with ``mutate="resample"`` and ``mutate="learned"``
(:func:`deapnn.hparams.learned.mut_learned`), same seeds, same everything else.

To reproduce (10-20 minutes on a shared 2-core machine)::

    python benchmarks/evonas_tabulated.py --seeds 100

Settings are chosen on seeds 1000-1099 (``--first-seed 1000``), reported on 0-99. The comparison of
``mut_learned`` with ``mut_resample`` is paired by seed (same seed, same initial population): the
script prints the difference of the medians with a 90% paired bootstrap interval and the per-seed
wins, losses and ties. ``--agents evo-nas --keep-rows`` reruns one agent and copies the other rows from
the previous results file (same seeds and settings, checked).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from deap import algorithms, creator

sys.path.insert(0, str(Path(__file__).parent))
from tabulated import TABLE, TableLookup, first_reach, load_table, summary  # noqa: E402

import deapnn  # noqa: E402
from deapnn.hparams import baselines  # noqa: E402
from deapnn.hparams.evonas import EvoNASAgent, EvolutionAgent, NeuralAgent  # noqa: E402
from deapnn.hparams.learned import LearnedMutation  # noqa: E402

RESULTS = Path(__file__).parent / "results"
AGENTS = ["evolution", "neural", "evo-nas", "random", "eaSimple+resample", "eaSimple+learned"]


def run(name: str, space, scores, seed: int, args) -> list[float]:
    """One search; returns the trace of distinct evaluations (scores in call order)."""
    deapnn.seed(seed)
    lookup = TableLookup(space, scores)
    learner = dict(training=args.training, queue_size=args.queue, learning_rate=args.lr,
                   controller=args.controller, entropy=args.entropy)
    if name == "random":
        baselines.random_search(lookup, space, patience=None, max_evaluations=len(scores), rng=random.Random(seed))
        return lookup.trace
    if name.startswith("eaSimple"):
        learned = name.endswith("learned")
        mutate_kwargs = {"indpb": args.indpb}
        if learned:
            mutate_kwargs["learner"] = LearnedMutation(space, explore=args.explore, rates=args.rates,
                                                       **{**learner, "learning_rate": args.learned_lr or args.lr})
        toolbox = deapnn.make_toolbox(space, lookup, mate=args.mate, mutate="learned" if learned else "resample",
                                      mutate_kwargs=mutate_kwargs, select_kwargs={"tournsize": args.tournsize},
                                      novel=args.novel)
        population = toolbox.population(n=args.ga_population)
        algorithms.eaSimple(population, toolbox, cxpb=args.cxpb, mutpb=args.mutpb, ngen=args.ngen, verbose=False)
        return lookup.trace
    rng = np.random.default_rng(seed)
    common = dict(lambda_=args.lambda_, rng=rng)
    if name == "evolution":
        agent = EvolutionAgent(space, args.population, args.sample, **common)
    elif name == "neural":
        agent = NeuralAgent(space, **learner, **common)
    else:
        agent = EvoNASAgent(space, args.population, args.sample, explore=args.explore, **learner, **common)
    toolbox = deapnn.make_toolbox(space, lookup)
    toolbox.register("generate", agent.generate, creator.Genome)
    toolbox.register("update", agent.update)
    algorithms.eaGenerateUpdate(toolbox, ngen=args.agent_ngen, verbose=False)
    return lookup.trace


def paired_bootstrap(a: list[float], b: list[float], draws: int = 10000, seed: int = 0) -> dict[str, Any]:
    """Median of ``a`` minus median of ``b`` (same seeds, so resampled together) with a 90%
    bootstrap interval (``numpy.random.default_rng(seed)``), and per-seed wins/losses/ties of
    ``a`` (fewer is better; a run that never got there counts as the largest)."""
    never = 1e18
    a, b = (np.where(np.isfinite(x), x, never) for x in (np.asarray(a, float), np.asarray(b, float)))
    picks = np.random.default_rng(seed).integers(len(a), size=(draws, len(a)))
    boot = np.median(a[picks], axis=1) - np.median(b[picks], axis=1)
    low, high = np.percentile(boot, [5, 95])
    return {"difference": float(np.median(a) - np.median(b)), "low": float(low), "high": float(high),
            "wins": int((a < b).sum()), "losses": int((a > b).sum()), "ties": int((a == b).sum())}


def _keep_rows(args, rows: dict) -> list[str]:
    """Copy into ``rows`` the rows of the agents not run now from the previous results ``args.out``
    (``--keep-rows``: their code did not change, and runs are deterministic given the seed), after
    checking that it was made with the same seeds and settings. Returns the names copied."""
    if not args.out.exists():
        raise SystemExit(f"--keep-rows: no previous results at {args.out}")
    previous = json.loads(args.out.read_text())
    ignore = {"agents", "out", "keep_rows", "table"}
    differ = [k for k, v in vars(args).items() if k not in ignore and previous["settings"].get(k) != v]
    if differ:
        raise SystemExit(f"--keep-rows: the previous results in {args.out} differ in {differ}")
    kept = [name for name in AGENTS if name not in rows and name in previous["results"]]
    for name in kept:
        rows[name] = previous["results"][name]
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed+seeds-1 (tune on 1000+, report on 0+)")
    parser.add_argument("--agents", nargs="+", default=AGENTS, choices=AGENTS)
    # the agents (eaGenerateUpdate)
    parser.add_argument("--population", type=int, default=20, help="regularized evolution's population")
    parser.add_argument("--sample", type=int, default=5, help="its tournament size")
    parser.add_argument("--lambda", dest="lambda_", type=int, default=5)
    parser.add_argument("--agent-ngen", type=int, default=100)
    parser.add_argument("--controller", choices=["table", "recurrent"], default="recurrent")
    parser.add_argument("--training", choices=["pqt", "reinforce"], default="pqt")
    parser.add_argument("--queue", type=int, default=10)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--entropy", type=float, default=0.0)
    parser.add_argument("--explore", type=float, default=0.5)
    parser.add_argument("--rates", action=argparse.BooleanOptionalAction, default=False,
                        help="mut_learned: the controller also scales each gene's mutation rate")
    parser.add_argument("--learned-lr", type=float, default=None, help="mut_learned's learning rate (default --lr)")
    # eaSimple (benchmarks/tabulated.py's settings, more generations)
    parser.add_argument("--ga-population", type=int, default=8)
    parser.add_argument("--ngen", type=int, default=60)
    parser.add_argument("--cxpb", type=float, default=0.5)
    parser.add_argument("--mutpb", type=float, default=0.5)
    parser.add_argument("--indpb", type=float, default=0.2)
    parser.add_argument("--tournsize", type=int, default=3)
    parser.add_argument("--mate", default="uniform", choices=["uniform", "one_point"])
    parser.add_argument("--novel", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--keep-rows", action="store_true",
                        help="copy the rows of the agents not in --agents from the previous results file "
                             "(same seeds and settings; for agents whose code did not change)")
    parser.add_argument("--out", type=Path, default=RESULTS / "evonas_tabulated.json")
    args = parser.parse_args()

    space, scores, raw = load_table(args.table)
    ranked = sorted(scores.values(), reverse=True)
    best, top1 = ranked[0], ranked[max(1, math.ceil(0.01 * len(ranked))) - 1]
    rows, traces, seconds = {}, {}, {}
    for name in args.agents:
        start = time.perf_counter()
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        traces[name] = [run(name, space, scores, s, args) for s in seeds]
        seconds[name] = time.perf_counter() - start
        reach = [first_reach(t, top1) for t in traces[name]]
        rows[name] = {"top1": summary(reach), "best": summary([first_reach(t, best) for t in traces[name]]),
                      "top1_per_seed": [None if math.isinf(r) else r for r in reach], "seconds": seconds[name]}

    kept = _keep_rows(args, rows) if args.keep_rows else []
    reach_top1 = {name: [math.inf if r is None else r for r in row["top1_per_seed"]] for name, row in rows.items()}

    print(f"table: {len(scores)} distinct networks; best {best:.4f}, top-1% threshold {top1:.4f}; "
          f"seeds {args.first_seed}-{args.first_seed + args.seeds - 1}; controller {args.controller}, "
          f"explore {args.explore}")
    print("distinct evaluations until the first top-1% / best network: median [q1, q3] (runs that reached it)\n")

    def fmt(s):
        if s["median"] is None:
            return f"not reached ({s['reached']}/{s['runs']})"
        q3 = "never" if s["q3"] is None else f"{s['q3']:.0f}"
        return f"{s['median']:.1f} [{s['q1']:.0f}, {q3}] ({s['reached']}/{s['runs']})"

    print("| agent | to top-1% | to best | seconds |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        kept_mark = " (kept)" if name in kept else ""
        print(f"| {name}{kept_mark} | {fmt(row['top1'])} | {fmt(row['best'])} | {row['seconds']:.0f} |")
    verdict, difference = None, None
    if {"eaSimple+resample", "eaSimple+learned"} <= set(rows):
        a, b = rows["eaSimple+learned"]["top1"]["median"], rows["eaSimple+resample"]["top1"]["median"]
        verdict = a is not None and (b is None or a < b)
        difference = paired_bootstrap(reach_top1["eaSimple+learned"], reach_top1["eaSimple+resample"])
        print(f"\neaSimple with mut_learned needs fewer evaluations to a top-1% network than with "
              f"mut_resample (median): {'yes' if verdict else 'NO'} ({a} vs {b}); difference of medians "
              f"{difference['difference']:+.1f}, 90% paired bootstrap interval [{difference['low']:+.1f}, "
              f"{difference['high']:+.1f}]; mut_learned faster on {difference['wins']}, slower on "
              f"{difference['losses']}, tied on {difference['ties']} seeds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "best": best, "top1_threshold": top1, "results": rows, "rows_kept_from_previous_run": kept,
        "learned_beats_resample": verdict,
        "learned_minus_resample": difference}, indent=1) + "\n")
    try:
        from deapnn.core.plotting import _pyplot

        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, 4))
        for name in rows:
            reach = np.array(reach_top1[name], dtype=float)
            x = np.arange(1, len(scores) + 1)
            ax.plot(x, [(reach <= k).mean() for k in x], label=name + (" (kept)" if name in kept else ""))
        ax.set_xscale("log")
        ax.set_xlabel("distinct evaluations")
        ax.set_ylabel(f"fraction of {args.seeds} seeds with a top-1% network")
        ax.set_title("Evo-NAS agents on the tabulated digits MLP space")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out.with_suffix(".png"), dpi=100)
    except Exception as err:  # the figure is a convenience; the table and JSON are the result
        print(f"no plot: {err}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
