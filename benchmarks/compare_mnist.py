"""Model-size study: where does weight evolution stop being competitive with gradient descent?

At one wall-clock budget per arm, networks of growing size -- 784-16-10 up to 784-256-10 and the
small conv front end (Conv2D(8, 5x5, stride 2) -> 2x2 max pool -> softmax) -- are

* trained by the hyperparameter arm: the network's size is fixed (a one-layer ``mlp_space`` with
  ``neurons`` = the size, or a one-block ``cnn_space``), the rest (optimizer, learning rate,
  initializer, activation, batch size, dropout) is evolved by eaSimple with short trainings, and
  the fittest is trained by ``train_best`` in what is left of the budget;
* evolved by the weight arms: the GA (``eaSimple``) and OpenAI-ES (``eaGenerateUpdate``) of
  :mod:`deapnn.jobs.weights` on the same network.

Every arm of every size uses the library's jobs (``deapnn.jobs``) in its own run folder under
``--runs``, so an interrupted study resumes where it stopped. The table gives the test accuracy,
the number of weights, evaluations and evaluations per second: the weight arms' cost per
evaluation grows with the number of weights, and the dimension their search must cover grows
with it too.

To reproduce: ``python benchmarks/compare_mnist.py --budget 2m`` (6 networks x 3 arms x 2 minutes:
about 40 minutes on 2 cores). Smoke run: ``python benchmarks/compare_mnist.py --data digits
--sizes 16 --budget 5s``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from deapnn.core.console import quiet_tensorflow

quiet_tensorflow()

RESULTS = Path(__file__).parent / "results"


def _hparams_space(size: str, path: Path) -> Path:
    """A space fixing the network's size: written as JSON (``SearchSpace.to_json``)."""
    from deapnn.keras import cnn_space, mlp_space

    if size == "conv":
        space = cnn_space(conv_blocks=(1,), filters=(8,), kernel_size=(5,), pooling=("max",),
                          dense=(0,), convs_per_block=(1,), batch_norm=(False,), conv_dropout=(0.0,))
    else:
        space = mlp_space(layers=1, neurons=(int(size),), batch_norm=(False,), use_bias=(True,))
    path.write_text(space.to_json())
    return path


def run_size(size: str, args: argparse.Namespace, data) -> list[dict]:
    from deapnn.jobs.common import RunFolder, config_dict
    from deapnn.jobs.hparams import HparamsConfig, run_hparams
    from deapnn.jobs.weights import WeightsConfig, run_weights

    rows = []
    for arm in args.arms:
        path = Path(args.runs) / f"{size}" / arm
        if arm == "hparams":
            path.mkdir(parents=True, exist_ok=True)
            space = _hparams_space(size, path / "space.json")
            config = HparamsConfig(data=args.data, space=str(space.resolve()), population=6,
                                   ngen=1000, budget=args.budget, lr_schedule="constant",
                                   best_epochs=100,
                                   best_patience=6, hof=3, seed=args.seed)
            kind, job = "hparams", run_hparams
        else:
            config = WeightsConfig(data=args.data, strategy=arm, budget=args.budget,
                                   arch="conv" if size == "conv" else "mlp",
                                   hidden=[] if size == "conv" else [int(size)],
                                   eval_every=max(1.0, args.budget / 10), seed=args.seed)
            kind, job = "weights", run_weights
        if (path / "run.json").exists():
            folder = RunFolder.open(path, kind)
        else:
            folder = RunFolder.create(path, kind, [sys.executable] + sys.argv, config_dict(config))
        result = job(folder, config, data=data, label=f"{size}/{arm}", quiet=args.quiet)
        folder.set_status("finished")
        rows.append({"size": size, "arm": arm, "test_accuracy": result["test_accuracy"],
                     "weights": result["weights"], "evaluations": result["evaluations"],
                     "evaluations_per_second": result["evaluations"] / result["wall_seconds"],
                     "wall_seconds": result["wall_seconds"], "failures": result["failures"],
                     "generations": result["generations"], "run_dir": str(path)})
    return rows


def plot(rows: list[dict], path: Path, title: str) -> None:
    from deapnn.core.plotting import _pyplot

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, arm in enumerate(dict.fromkeys(r["arm"] for r in rows)):
        mine = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["weights"])
        w = [r["weights"] for r in mine]
        left.plot(w, [r["test_accuracy"] for r in mine], "o-", color=f"C{i}", label=arm)
        right.plot(w, [r["evaluations_per_second"] for r in mine], "o-", color=f"C{i}", label=arm)
        for r in mine:
            left.annotate(r["size"], (r["weights"], r["test_accuracy"]), fontsize=7,
                          xytext=(3, 3), textcoords="offset points")
    left.set(xscale="log", xlabel="weights", ylabel="test accuracy", ylim=(0, 1), title=title)
    right.set(xscale="log", yscale="log", xlabel="weights", ylabel="evaluations per second",
              title="cost of an evaluation")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    from deapnn.cli.common import budget

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="mnist", help="mnist (default), digits or an .npz")
    parser.add_argument("--sizes", nargs="+", default=["16", "32", "64", "128", "256", "conv"],
                        help="hidden sizes of 784-SIZE-10 networks, and/or conv")
    parser.add_argument("--arms", nargs="+", default=["hparams", "ga", "es"],
                        choices=["hparams", "ga", "es", "snes"])
    parser.add_argument("--budget", type=budget, default=120.0, help="per arm and size (2m)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--runs", type=Path, default=RESULTS / "compare_mnist_runs")
    parser.add_argument("--out", type=Path, default=RESULTS / "compare_mnist.json")
    args = parser.parse_args()
    for size in args.sizes:
        if size != "conv" and not (size.isdigit() and int(size) > 0):
            parser.error(f"--sizes takes positive integers or conv, got {size!r}")

    from deapnn.jobs.common import load_data

    data = load_data(args.data, None, args.seed)
    rows = []
    for size in args.sizes:
        rows += run_size(size, args, data)
    header = f"{'network':<10}{'arm':<9}{'test acc':>9}{'weights':>9}{'evals':>10}{'evals/s':>10}{'wall s':>8}"
    print(header)
    for r in rows:
        print(f"{r['size']:<10}{r['arm']:<9}{r['test_accuracy']:>9.4f}{r['weights']:>9}"
              f"{r['evaluations']:>10}{r['evaluations_per_second']:>10.1f}{r['wall_seconds']:>8.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/compare_mnist.py " + " ".join(sys.argv[1:])
    args.out.write_text(json.dumps({"command": command, "cpu_count": os.cpu_count(),
                                    "budget_seconds": args.budget, "data": data.name,
                                    "rows": rows}, indent=1) + "\n")
    png = args.out.with_suffix(".png")
    plot(rows, png, f"{data.name}: {args.budget:.0f} s per arm")
    print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
