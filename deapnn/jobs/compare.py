"""The comparison job: hyperparameter evolution vs weight evolution on one split and one budget.

Every arm gets the same data split (train / validation / test, from ``--seed``) and the same
wall-clock budget:

* ``hparams``: the MLP space evolved by DEAP's ``eaSimple`` (:mod:`deapnn.jobs.hparams`), each
  genome trained briefly and scored on the validation split; the fittest then trained by
  ``train_best`` (early stopping on validation accuracy) in what is left of the budget;
* ``ga``: all weights of a small network evolved by DEAP's ``eaSimple`` on
  :func:`deapnn.weights.make_weight_toolbox`'s toolbox with a :class:`~deapnn.weights.BatchedEvaluator`;
* ``es``: the same network's weights by :class:`~deapnn.weights.OpenAIES` (``eaGenerateUpdate``).

Selection uses training minibatches and the validation split only; the test split is scored only
to report. Each arm runs in its own run folder under ``arms/`` (resumable one by one); the job
writes ``compare.json``, ``compare.md`` (the table) and ``compare.png`` (test accuracy against
wall time, every arm on one plot), rewritten after each arm (``"complete": false`` until the
last one finishes, so an interrupted comparison still shows its finished arms).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deapnn.jobs.common import (BadInput, RunFolder, config_dict, format_seconds, load_data,
                                to_jsonable, write_json)

__all__ = ["ARMS", "CompareConfig", "compare_table", "run_compare", "write_compare_report"]

#: Arm name -> (kind of its run folder, what it is).
ARMS = {
    "hparams": ("hparams", "hyperparameter evolution (eaSimple) + train_best"),
    "ga": ("weights", "weight evolution, GA (eaSimple)"),
    "es": ("weights", "weight evolution, OpenAI-ES (eaGenerateUpdate)"),
    "snes": ("weights", "weight evolution, SNES (eaGenerateUpdate)"),
}
COLUMNS = ("arm", "method", "test accuracy", "weights", "evaluations", "wall time (s)", "failures")


@dataclass
class CompareConfig:
    """Settings of a comparison (``deapnn compare --help`` describes each)."""

    data: str = "mnist"
    scale: float | None = None
    budget: float = 180.0
    arms: list[str] = field(default_factory=lambda: ["hparams", "ga", "es"])
    hidden: list[int] = field(default_factory=lambda: [32])
    arch: str = "auto"
    hparams_population: int = 6
    seed: int = 0
    workers: int = 1
    backend: str = "serial"

    def __post_init__(self) -> None:
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or not self.arms:
            raise BadInput(f"--arms must name some of {', '.join(ARMS)}, got {' '.join(self.arms) or 'none'}")
        if len(set(self.arms)) != len(self.arms):
            raise BadInput(f"--arms repeats an arm: {' '.join(self.arms)}")


def _arm_config(arm: str, config: CompareConfig) -> Any:
    from deapnn.jobs.hparams import HparamsConfig
    from deapnn.jobs.weights import WeightsConfig

    common = {"data": config.data, "scale": config.scale, "seed": config.seed,
              "budget": config.budget, "workers": config.workers, "backend": config.backend}
    if arm == "hparams":
        # time-limited trainings rarely finish an epoch, so a decaying schedule would hardly
        # decay: keep the rate constant and let train_best halve it on plateaus instead
        return HparamsConfig(space="mlp", population=config.hparams_population, ngen=1000,
                             lr_schedule="constant", best_epochs=100, best_patience=6, hof=3,
                             **common)
    eval_every = max(1.0, config.budget / 15)
    return WeightsConfig(strategy=arm, arch=config.arch, hidden=list(config.hidden),
                         eval_every=eval_every, **common)


def run_compare(folder: RunFolder, config: CompareConfig, *, quiet: bool = False, log=print) -> dict:
    """Run (or resume) every arm of a comparison in ``folder``; returns ``compare.json``'s content.

    Arms that finished are kept; an interrupted arm resumes from its own checkpoint.
    """
    from deapnn.jobs.hparams import run_hparams
    from deapnn.jobs.weights import run_weights

    say = (lambda *a, **k: None) if quiet else log
    data = load_data(config.data, config.scale, config.seed)
    say(f"compare on {data.name}: {len(data.y_train)} training, {len(data.y_val)} validation, "
        f"{len(data.y_test)} test images; {format_seconds(config.budget)} per arm, "
        f"{len(config.arms)} arms")
    results: list[dict] = []
    report = {"data": {"name": data.name, "train": len(data.y_train), "validation": len(data.y_val),
                       "test": len(data.y_test), "input_shape": list(data.input_shape),
                       "classes": data.n_classes},
              "budget_seconds": config.budget, "seed": config.seed,
              "command": " ".join(folder.command), "config": config_dict(config), "arms": results,
              "complete": False}
    for arm in config.arms:
        kind, method = ARMS[arm]
        arm_config = _arm_config(arm, config)
        path = folder.file("arms") / arm
        if (path / "run.json").exists():
            sub = RunFolder.open(path, kind)
        else:
            sub = RunFolder.create(path, kind, folder.command, config_dict(arm_config))
        sub.set_status("running")
        run = run_hparams if kind == "hparams" else run_weights
        try:
            result = run(sub, arm_config, quiet=quiet, data=data, label=arm, log=log)
        except KeyboardInterrupt:
            sub.set_status("interrupted")
            raise
        sub.set_status("finished")
        curve = result.get("curve") or [{"seconds": result["wall_seconds"],
                                         "test_accuracy": result["test_accuracy"]}]
        results.append({
            "arm": arm, "label": arm, "method": method,
            "network": result.get("network") or _hparams_network(result),
            "test_accuracy": result["test_accuracy"], "weights": result["weights"],
            "evaluations": result["evaluations"], "wall_seconds": result["wall_seconds"],
            "failures": result["failures"], "generations": result["generations"],
            "curve": [{"seconds": p["seconds"], "test_accuracy": p["test_accuracy"]} for p in curve],
            "folder": f"arms/{arm}",
        })
        if arm != config.arms[-1]:  # a partial report: `deapnn report` shows the arms so far
            write_compare_report(folder, report)
    report["complete"] = True
    write_compare_report(folder, report)
    say("")
    log(compare_table(report))  # the result: printed even when quiet
    return to_jsonable(report)


def _hparams_network(result: dict) -> str:
    genome = result.get("best_genome") or {}
    layers = [genome.get(f"neurons{i}") for i in range(5)]
    layers = [str(n) for n in layers if n]
    return "MLP " + "-".join(layers) if layers else "evolved"


def compare_table(report: dict) -> str:
    """The markdown table of a comparison (``compare.md``'s table, printed at the end)."""
    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join(["---"] * 2 + ["---:"] * (len(COLUMNS) - 2)) + "|"]
    for a in report["arms"]:
        lines.append(f"| {a['arm']} | {a['method']} | {float(a['test_accuracy']):.4f} | "
                     f"{a['weights']} | {a['evaluations']} | {float(a['wall_seconds']):.1f} | "
                     f"{a['failures']} |")
    return "\n".join(lines)


def write_compare_report(folder: RunFolder, report: dict) -> None:
    """Write ``compare.json``, ``compare.md`` and ``compare.png`` into the run folder."""
    from deapnn.core.plotting import plot_compare

    write_json(folder.file("compare.json"), report)
    d = report["data"]
    md = [f"# deapnn compare: {d['name']}", "",
          f"`{report['command']}`", "",
          f"Data: {d['train']} training, {d['validation']} validation and {d['test']} test "
          f"examples of shape {tuple(d['input_shape'])}, {d['classes']} classes; one split for "
          f"every arm (seed {report['seed']}). Budget: {format_seconds(report['budget_seconds'])} "
          "of wall time per arm. Selection sees training minibatches and the validation split "
          "only; test accuracy is measured to report.", "",
          compare_table(report), "",
          *([] if report.get("complete", True) else
            ["*Partial: the run has not finished every arm yet.*", ""]),
          "Columns: *weights* of the network whose test accuracy is reported; *evaluations*: "
          "networks trained (hparams: distinct genomes, each trained briefly) or weight vectors "
          "scored on a minibatch (ga, es); *wall time*: the arm's own time (weight arms: "
          "optimisation time, with the clock stopped while progress is measured); *failures*: "
          "evaluations that returned a Failure.", "",
          "![test accuracy against wall time](compare.png)", ""]
    md += [f"- **{a['arm']}**: {a['method']}, network {a['network']}, {a['generations']} "
           f"generations (run folder `{a['folder']}`)" for a in report["arms"]]
    (folder.file("compare.md")).write_text("\n".join(md) + "\n")
    fig = plot_compare(report["arms"], title=f"{d['name']}: test accuracy against wall time "
                                             f"({format_seconds(report['budget_seconds'])} per arm)",
                       budget=float(report["budget_seconds"]), path=folder.file("compare.png"))
    import matplotlib.pyplot as plt

    plt.close(fig)
