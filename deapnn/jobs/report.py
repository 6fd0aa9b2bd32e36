"""``deapnn report``: redraw the tables and figures of a run folder from its JSON files.

Needs neither TensorFlow nor the checkpoint: only ``run.json``, ``logbook.json``,
``populations.json``, ``genealogy.json``, ``curve.json``, ``result.json`` and ``compare.json``,
so a copied folder (or one whose run is still going) reports the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deapnn.jobs.common import BadInput, RunFolder, format_seconds

__all__ = ["report_run"]


def _save(fig: Any, written: list[Path], path: Path) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)
    written.append(path)


def report_run(folder: RunFolder, log=print) -> list[Path]:
    """Redraw every figure of ``folder`` (and of its arms, for a comparison).

    Returns:
        The files written.
    """
    from deapnn.core import plotting

    written: list[Path] = []
    if folder.kind == "compare":
        from deapnn.jobs.compare import compare_table, write_compare_report

        for arm in sorted(folder.file("arms").glob("*/run.json")):
            written += report_run(RunFolder.open(arm.parent), log=lambda *a, **k: None)
        report = folder.read_json("compare.json")
        if report is None:
            log(f"{folder.path}: no arm has finished yet")
            return written
        if not report.get("complete", True):
            log(f"{folder.path}: partial comparison, {len(report['arms'])} arm(s) finished")
        write_compare_report(folder, report)
        written += [folder.file(n) for n in ("compare.json", "compare.md", "compare.png")]
        log(compare_table(report))
        return written

    records = folder.read_json("logbook.json") or []
    if records:
        title = "validation score" if folder.kind == "hparams" else "fitness (minibatch)"
        for x, name in (("gen", "fitness.png"), ("elapsed", "fitness_time.png")):
            fig = plotting.plot_logbook(records, x=x, ylabel=title, path=folder.file(name),
                                        title=f"{folder.path.name}: fitness by "
                                              f"{'generation' if x == 'gen' else 'wall time'}")
            _save(fig, written, folder.file(name))
    space = None
    result = folder.read_json("result.json") or {}
    if folder.kind == "hparams":
        if result.get("space") is not None:
            from deapnn.hparams.space import SearchSpace

            try:
                space = SearchSpace.from_dict(result["space"])
            except Exception:  # noqa: BLE001 - the figure is still drawn without the space
                space = None
        populations = folder.read_json("populations.json")
        if populations:
            fig = plotting.plot_gene_frequencies(populations, space, path=folder.file("genes.png"),
                                                 title=f"{folder.path.name}: genes by generation")
            _save(fig, written, folder.file("genes.png"))
        genealogy = folder.read_json("genealogy.json")
        if genealogy:
            fig = plotting.plot_genealogy(genealogy, path=folder.file("genealogy.png"))
            _save(fig, written, folder.file("genealogy.png"))
        evaluated = folder.read_json("evaluated.json")
        if evaluated:  # a two-objective run: (validation score, weights) of every evaluation
            fig = plotting.plot_pareto(evaluated, path=folder.file("pareto.png"),
                                       title=f"{folder.path.name}: Pareto front")
            _save(fig, written, folder.file("pareto.png"))
    if folder.kind == "weights":
        curve = folder.read_json("curve.json") or result.get("curve")
        if curve:
            arm = {"label": folder.path.name, "curve": curve,
                   "test_accuracy": curve[-1]["test_accuracy"],
                   "wall_seconds": curve[-1]["seconds"]}
            fig = plotting.plot_compare([arm], title=f"{folder.path.name}: test accuracy",
                                        path=folder.file("accuracy.png"))
            _save(fig, written, folder.file("accuracy.png"))
    if result:
        log(f"{folder.path}: {folder.kind} run, {folder.status}; test accuracy "
            f"{float(result['test_accuracy']):.4f}, {result['evaluations']} evaluations, "
            f"{result['failures']} failures, {format_seconds(float(result['wall_seconds']))}")
    elif records:
        log(f"{folder.path}: {folder.kind} run, {folder.status}; {records[-1]['gen']} generations so far")
    else:
        raise BadInput(f"run folder {str(folder.path)!r} has no finished generation to report yet")
    for path in written:
        log(f"  wrote {path}")
    return written

