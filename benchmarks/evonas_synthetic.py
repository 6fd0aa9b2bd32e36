"""Seed 003's synthetic task: evolutionary vs neural vs Evo-NAS hybrid agents.

Each agent is a DEAP strategy driven by DEAP's unmodified ``eaGenerateUpdate`` on a deapnn
toolbox (with its evaluation cache). The task: ``n`` decisions ``a_i`` in ``{1..n}``,
``r(a) = (n+1) / (a_1^2 + sum (a_{k+1}-a_k)^2 + (a_n-(n+1))^2)``, maximum 1 at ``a_k = k``.
Reports the best reward found after given numbers of generated individuals, averaged over seeds.

To reproduce: ``python benchmarks/evonas_synthetic.py --n 10 --budget 3000 --seeds 20``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from deap import algorithms, base, creator

import deapnn
from deapnn.hparams.evonas import EvoNASAgent, EvolutionAgent, NeuralAgent, synthetic_reward, synthetic_space

RESULTS = Path(__file__).parent / "results"


class Recorder:
    """Best reward so far after every generated individual (cache hits count: the agent asked for them)."""

    def __init__(self) -> None:
        self.curve: list[float] = []

    def __call__(self, genome):
        fit = synthetic_reward(genome)
        self.curve.append(max(fit[0], self.curve[-1] if self.curve else 0.0))
        return fit


def run_agent(name: str, n: int, budget: int, seed: int, lambda_: int, args) -> list[float]:
    deapnn.seed(seed)
    space = synthetic_space(n)
    rng = np.random.default_rng(seed)
    common = dict(lambda_=lambda_, rng=rng)
    if name == "evolution":
        agent = EvolutionAgent(space, args.population, args.sample, args.p_mutate, **common)
    elif name == "neural":
        agent = NeuralAgent(space, training=args.training, queue_size=args.queue, learning_rate=args.lr, **common)
    else:
        agent = EvoNASAgent(space, args.population, args.sample, args.p_mutate, training=args.training,
                            queue_size=args.queue, learning_rate=args.lr, **common)
    recorder = Recorder()
    toolbox = base.Toolbox()
    toolbox.register("evaluate", recorder)
    toolbox.register("generate", agent.generate, creator.Genome)
    toolbox.register("update", agent.update)
    algorithms.eaGenerateUpdate(toolbox, ngen=budget // lambda_, verbose=False)
    return recorder.curve[:budget]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10, help="number of decisions")
    parser.add_argument("--budget", type=int, default=3000, help="individuals generated per run")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--lambda", dest="lambda_", type=int, default=10)
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--sample", type=int, default=10)
    parser.add_argument("--p-mutate", type=float, default=None)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--training", choices=["pqt", "reinforce"], default="pqt")
    parser.add_argument("--queue", type=int, default=10, help="PQT queue size")
    parser.add_argument("--out", type=Path, default=RESULTS / "evonas_synthetic.json")
    args = parser.parse_args()

    agents = ["evolution", "neural", "evo-nas"]
    checkpoints = [c for c in (100, 250, 500, 1000, 2000, 3000, 5000, 10000) if c <= args.budget]
    curves: dict[str, np.ndarray] = {}
    start = time.perf_counter()
    for name in agents:
        curves[name] = np.array([run_agent(name, args.n, args.budget, s, args.lambda_, args) for s in range(args.seeds)])
    seconds = time.perf_counter() - start

    print(f"n={args.n}, {args.seeds} seeds: mean (± std) best reward after N individuals; optimum = 1")
    print(f"{'agent':<11}" + "".join(f"{c:>15}" for c in checkpoints) + f"{'solved':>9}")
    rows = {}
    for name in agents:
        at = {c: curves[name][:, c - 1] for c in checkpoints}
        solved = float(np.mean(curves[name][:, -1] >= 1.0 - 1e-12))
        rows[name] = {"mean": {c: float(v.mean()) for c, v in at.items()},
                      "std": {c: float(v.std()) for c, v in at.items()}, "solved": solved}
        print(f"{name:<11}" + "".join(f"{at[c].mean():>9.3f} ±{at[c].std():.2f}" for c in checkpoints)
              + f"{solved:>9.0%}")
    print(f"wall time {seconds:.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "out"},
                                    "results": rows, "seconds": seconds}, indent=1))
    try:
        from deapnn.core.plotting import _pyplot

        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, 4))
        x = np.arange(1, args.budget + 1)
        for name in agents:
            ax.plot(x, curves[name].mean(axis=0), label=name)
        ax.set_xscale("log")
        ax.set_xlabel("individuals generated")
        ax.set_ylabel(f"best reward (mean of {args.seeds} seeds)")
        ax.set_title(f"Evo-NAS synthetic task, n={args.n}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out.with_suffix(".png"), dpi=100)
    except Exception as err:  # the figure is a convenience; the table and JSON are the result
        print(f"no plot: {err}")


if __name__ == "__main__":
    main()
