"""The hyperparameter job: evolve a search space with :func:`deapnn.evolve`, then ``train_best``.

The job behind ``deapnn hparams`` and the hyperparameter arm of ``deapnn compare`` (and
``benchmarks/hparams_mnist.py``). Every genome is trained for ``epochs`` epochs under a per-model
time limit and scored on the validation split; DEAP's algorithm evolves the population one
generation per :func:`deapnn.evolve` call (each call resumes the run folder's checkpoint, so an
interrupted run continues exactly where its last generation ended), and the fittest genome is then
trained by :func:`deapnn.keras.train_best` with early stopping and scored once on the test split.

With a ``budget``, the evolution stops after the generation that reaches ``evolve_fraction`` of
it and ``train_best`` gets the rest.

With ``fidelity`` (budgets in epochs, e.g. ``(0.25, 1, 3)``) each generation is evaluated by
successive halving (:class:`deapnn.core.fidelity.MultiFidelity`): every new genome is trained
to the first budget, the best ``promote`` fraction continues to the next, and so on; ``epochs``
is then unused. Lower-rung training states are kept in the run folder's ``rungs/``.
"""

from __future__ import annotations

import inspect
import math
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deapnn.jobs.common import (BadInput, Progress, RunFolder, config_dict, data_loader,
                                format_seconds, load_data, to_jsonable, write_logbook)

__all__ = ["HparamsConfig", "load_space", "run_hparams"]

ALGORITHMS = ("simple", "mu+lambda", "mu,lambda")


@dataclass
class HparamsConfig:
    """Settings of a hyperparameter run (``deapnn hparams --help`` describes each)."""

    data: str = "mnist"
    scale: float | None = None
    space: str = "mlp"
    population: int = 8
    ngen: int = 5
    algorithm: str = "simple"
    cxpb: float = 0.5
    mutpb: float = 0.4
    mate: str = "uniform"
    mutate: str = "perturb"
    select: str = "tournament"
    tournsize: int = 3
    indpb: float | None = None
    sigma: float = 0.1
    novel: bool = True
    epochs: int = 1
    max_training_time: float | None = None
    lr_schedule: str = "linear"
    steps_per_execution: int = 32
    params_objective: bool = False
    budget: float | None = None
    evolve_fraction: float = 0.7
    best_epochs: int = 20
    best_patience: int = 5
    best_time: float | None = None
    hof: int = 5
    target: float | None = None
    patience: int | None = None
    max_evaluations: int | None = None
    seed: int = 0
    workers: int = 1
    backend: str = "serial"
    fidelity: tuple[float, ...] | None = None
    promote: float = 0.5

    def __post_init__(self) -> None:
        if self.fidelity is not None:
            from deapnn.core.fidelity import check_budgets

            try:
                self.fidelity = check_budgets(tuple(self.fidelity))
            except (TypeError, ValueError) as exc:
                raise BadInput(f"--fidelity: {exc}") from exc
        if isinstance(self.promote, bool) or not isinstance(self.promote, (int, float)) \
                or not 0.0 < self.promote < 1.0:
            raise BadInput(f"--promote must be a fraction in (0, 1), got {self.promote!r}")
        for name in ("population", "ngen", "epochs", "best_epochs", "hof", "workers", "tournsize"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "ngen" else 1):
                raise BadInput(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name in ("cxpb", "mutpb", "indpb"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise BadInput(f"--{name} must be a probability in [0, 1], got {value!r}")
        if self.cxpb + self.mutpb > 1.0 and self.algorithm != "simple":
            raise BadInput(f"--cxpb + --mutpb must be <= 1 for {self.algorithm}, got "
                           f"{self.cxpb} + {self.mutpb}")
        if self.algorithm not in ALGORITHMS:
            raise BadInput(f"--algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        if not 0.0 < self.evolve_fraction <= 1.0:
            raise BadInput(f"--evolve-fraction must be in (0, 1], got {self.evolve_fraction!r}")
        if self.backend not in ("serial", "processes", "scoop"):
            raise BadInput(f"--backend must be serial, processes or scoop, got {self.backend!r}")
        for name in ("max_training_time", "best_time", "budget"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise BadInput(f"--{name.replace('_', '-')} must be a positive number of seconds, got {value!r}")


def load_space(spec: str) -> tuple[Any, Any]:
    """``(space, build)`` of ``--space``: ``mlp``, ``cnn`` or a JSON file of ``SearchSpace.to_json``.

    A JSON space is built by :func:`deapnn.keras.build_cnn` when it has the CNN space's genes,
    else by :func:`deapnn.keras.build_mlp`.

    Raises:
        BadInput: For a missing file or one that is not a valid space.
    """
    from deapnn.hparams.space import SearchSpace
    from deapnn.keras import CNN_SPACE, MLP_SPACE, build_cnn, build_mlp

    if spec == "mlp":
        return MLP_SPACE, build_mlp
    if spec == "cnn":
        return CNN_SPACE, build_cnn
    path = Path(spec)
    if not path.is_file():
        raise BadInput(f"--space must be mlp, cnn or a JSON file, and {spec!r} does not exist")
    try:
        space = SearchSpace.from_json(path.read_text())
    except Exception as exc:  # noqa: BLE001 - a bad file is the user's to fix, whatever the error
        raise BadInput(f"space file {spec!r} is not a valid search space: "
                       f"{type(exc).__name__}: {exc}") from exc
    build = build_cnn if {"conv_blocks", "filters"} <= set(space.names) else build_mlp
    return space, build


def _evolve_extras(config: HparamsConfig) -> dict[str, Any]:
    """Keywords of :func:`deapnn.evolve` this run sets; an unsupported rule is an error."""
    import deapnn

    params = inspect.signature(deapnn.evolve).parameters
    extras: dict[str, Any] = {}
    for name in ("target", "patience", "max_evaluations"):
        value = getattr(config, name)
        if value is not None:
            if name not in params:
                raise BadInput(f"--{name.replace('_', '-')} needs a deapnn.evolve with {name}=")
            extras[name] = value
    if "extend" in params:  # each call runs one more generation than the checkpoint holds
        extras["extend"] = True
    return extras


def make_hparams_toolbox(config: HparamsConfig, space: Any, evaluator: Any) -> Any:
    """The toolbox of a run: ``make_toolbox`` with the configured operators and backend."""
    import deapnn
    from deap import creator

    mutate_kwargs: dict[str, Any] = {}
    if config.indpb is not None and config.mutate != "one_gene":
        mutate_kwargs["indpb"] = config.indpb
    if config.mutate == "perturb":
        mutate_kwargs["sigma"] = config.sigma
    select = "nsga2" if config.params_objective else config.select
    select_kwargs = {"tournsize": config.tournsize} if select == "tournament" else {}
    try:
        toolbox = deapnn.make_toolbox(
            space, evaluator, genome_type=creator.GenomeMulti if config.params_objective else None,
            mate=config.mate, mutate=config.mutate, select=select, mutate_kwargs=mutate_kwargs,
            select_kwargs=select_kwargs, novel=config.novel)
    except (TypeError, ValueError) as exc:
        raise BadInput(str(exc)) from exc
    if config.backend != "serial":
        from deapnn.parallel import register_backend

        register_backend(toolbox, config.backend, workers=config.workers)
    return toolbox


def _genealogy(history: Any, best: Any, cache: Any, space: Any) -> dict:
    """The best individual's ancestors (DEAP ``History.getGenealogy``) with their fitness."""
    index = getattr(best, "history_index", None)
    if history is None or index is None:
        return {}
    tree = history.getGenealogy(best, max_depth=12)
    nodes = {}
    for i in set(tree) | {p for parents in tree.values() for p in parents} | {index}:
        ind = history.genealogy_history.get(i)
        if ind is None:
            continue
        fitness = cache.records.get(cache.key(ind)) if cache is not None else None
        nodes[i] = {"genome": dict(zip(space.names, ind)),
                    "fitness": list(fitness) if fitness is not None else None}
    return {"best": index, "tree": {i: list(p) for i, p in tree.items()}, "nodes": nodes}


def _is_rung_key(key: Any) -> bool:
    return isinstance(key, tuple) and len(key) == 3 and key[1] == "rung"


def _rung_counts(fidelity: Any) -> list[dict[str, Any]] | None:
    """``[{"rung", "budget", "trainings", "seconds"}]`` of a multi-fidelity run, else None."""
    if fidelity is None:
        return None
    out = []
    for rung, budget in enumerate(fidelity.budgets):
        done = [e for e in fidelity.log if e["rung"] == rung]
        out.append({"rung": rung, "budget": budget, "trainings": len(done),
                    "seconds": sum(e["seconds"] or 0.0 for e in done)})
    return out


def run_hparams(folder: RunFolder, config: HparamsConfig, *, quiet: bool = False,
                data: Any = None, label: str = "hparams", log=print) -> dict:
    """Run (or resume) a hyperparameter job in ``folder``; returns the result (also ``result.json``).

    Args:
        folder: The run folder; its ``checkpoint.pkl``, if any, is resumed.
        config: The settings.
        quiet: No progress bar and no printing.
        data: An already loaded dataset for the same ``config.data`` (saves loading it again).
        label: The progress bar's name.
        log: Where lines are printed.

    Randomness: :func:`deapnn.seed` ``(config.seed)`` seeds Python's, numpy's and deapnn's
    generators; the checkpoint saves and restores them. Keras is seeded per genome.
    """
    import deapnn
    from deap import tools
    from deapnn.core.console import import_tensorflow
    from deapnn.keras import KerasEvaluator, train_best

    say = (lambda *a, **k: None) if quiet else log
    space, build = load_space(config.space)
    if data is None:
        data = load_data(config.data, config.scale, config.seed)  # bad data fails before TF
    extras = _evolve_extras(config)
    result = folder.read_json("result.json")
    if result is not None and result.get("train_best") is not None:
        return result

    budget_evolve = config.budget * config.evolve_fraction if config.budget else None
    per_model = config.max_training_time
    if per_model is None:
        per_model = (max(2.0, budget_evolve / (config.population * 3)) if budget_evolve
                     else 120.0)
    import_tensorflow()
    deapnn.seed(config.seed)
    evaluator = KerasEvaluator(
        data_loader(config.data, config.scale, config.seed), build, max_epochs=config.epochs,
        max_training_time=per_model, seed=config.seed, lr_schedule=config.lr_schedule,
        steps_per_execution=config.steps_per_execution,
        objectives=("score", "params") if config.params_objective else ("score",))
    toolbox = make_hparams_toolbox(config, space, evaluator)
    fidelity = None
    if config.fidelity is not None:
        from deapnn.core.fidelity import MultiFidelity

        fidelity = MultiFidelity(evaluator, config.fidelity, config.promote,
                                 folder=folder.file("rungs"))
        fidelity.install(toolbox)
    history = tools.History()
    toolbox.decorate("mate", history.decorator)
    toolbox.decorate("mutate", history.decorator)
    hof = tools.ParetoFront() if config.params_objective else tools.HallOfFame(config.hof)
    checkpoint = folder.file("checkpoint.pkl")
    history_file = folder.file("history.pkl")
    population = None
    if checkpoint.exists() and history_file.exists():
        saved = pickle.loads(history_file.read_bytes())
        history.genealogy_index, history.genealogy_history, history.genealogy_tree = saved
    elif not checkpoint.exists():
        population = toolbox.population(n=config.population)
        history.update(population)
    else:
        population = []  # resumed from the checkpoint; genealogy from here on is lost
    populations = {int(k): v for k, v in (folder.read_json("populations.json") or {}).items()}
    if population and 0 not in populations:
        populations[0] = [ind.as_dict() for ind in population]
    records = folder.read_json("logbook.json") or []
    done = int(records[-1]["gen"]) if records else 0
    elapsed = float(records[-1].get("elapsed", 0.0)) if records else 0.0
    bar = Progress(label, None if config.budget else config.ngen, "gen", quiet, initial=done)
    stop_reason = None
    mu_lambda = {} if config.algorithm == "simple" else {
        "mu": config.population, "lambda_": 2 * config.population}
    logbook = None
    last_gen = (float(records[-1]["elapsed"]) - float(records[-2]["elapsed"])
                if len(records) > 2 else 0.0)
    evaluator.dataset  # load once, outside the first generation's time
    try:
        while done < config.ngen:
            # stop when the next generation (as long as the last one) would overrun the budget
            if budget_evolve is not None and done > 0 and elapsed + last_gen >= budget_evolve:
                stop_reason = "budget"
                break
            before = elapsed
            population, logbook = deapnn.evolve(
                population, toolbox, done + 1, algorithm=config.algorithm, cxpb=config.cxpb,
                mutpb=config.mutpb, stats=deapnn.fitness_stats(), halloffame=hof,
                checkpoint=checkpoint, **mu_lambda, **extras)
            records = write_logbook(folder.path, logbook)
            gen = int(records[-1]["gen"])
            elapsed = float(records[-1].get("elapsed", elapsed))
            last_gen = max(0.0, elapsed - before) / (2 if gen == 1 else 1)  # call 1: gens 0 and 1
            history_file.write_bytes(pickle.dumps(
                (history.genealogy_index, history.genealogy_history, history.genealogy_tree)))
            populations[gen] = [ind.as_dict() for ind in population]
            folder.write_json("populations.json", populations)
            if config.params_objective:
                folder.write_json("evaluated.json", [list(f) for k, f in toolbox.cache.records.items()
                                                     if not _is_rung_key(k)])
            best = max(hof, key=lambda ind: ind.fitness.values[0]) if len(hof) else None
            if best is not None:
                folder.write_json("genealogy.json", _genealogy(history, best, toolbox.cache, space))
                folder.write_json("best_genome.json", best.as_dict())
            bar.update(gen, best.fitness.values[0] if best is not None else None)
            reason = getattr(logbook, "stop_reason", None)
            if gen <= done or (reason and reason != "ngen"):
                stop_reason = reason or "stopping rule"
                break
            done = gen
        else:
            stop_reason = stop_reason or "ngen"
    finally:
        bar.close()
    if logbook is None:  # nothing left to evolve: restore the state from the checkpoint
        population, logbook = deapnn.evolve(
            population, toolbox, done, algorithm=config.algorithm, cxpb=config.cxpb,
            mutpb=config.mutpb, stats=deapnn.fitness_stats(), halloffame=hof,
            checkpoint=checkpoint, **mu_lambda, **extras)
    cache = toolbox.cache
    best = max(hof, key=lambda ind: ind.fitness.values[0])
    rungs = _rung_counts(fidelity)
    if rungs:
        say(f"{label}: trainings per rung (epochs: count) " + ", ".join(
            f"{r['budget']:g}: {r['trainings']}" for r in rungs))
    say(f"{label}: {done} generations ({stop_reason}), {cache.misses} distinct evaluations, "
        f"{len(cache.failures)} failures, best validation score {best.fitness.values[0]:.4f}, "
        f"{format_seconds(elapsed)}")

    best_time = config.best_time
    if config.budget is not None:
        best_time = max(5.0, config.budget - elapsed)
    start = time.perf_counter()
    trained = train_best(best, evaluator, epochs=config.best_epochs, patience=config.best_patience,
                         monitor="val_accuracy", path=folder.file("best"),
                         max_training_time=best_time,
                         lr_patience=(max(1, config.best_patience // 2)
                                      if config.lr_schedule == "constant" else None))
    best_seconds = time.perf_counter() - start
    params = int(trained.model.count_params()) if trained.model is not None else None
    say(f"{label}: train_best {trained.epochs} epochs, test accuracy "
        f"{trained.test_accuracy:.4f}, {params} weights, {format_seconds(best_seconds)}")
    result = {
        "kind": "hparams",
        "generations": done,
        "stop_reason": stop_reason,
        "best_genome": best.as_dict(),
        "best_fitness": list(best.fitness.values),
        "hall_of_fame": [{"genome": g.as_dict(), "fitness": list(g.fitness.values)} for g in hof],
        "pareto_front": ([list(g.fitness.values) for g in hof] if config.params_objective else None),
        "objectives": ["validation accuracy", "weights"] if config.params_objective
        else ["validation accuracy"],
        "evaluations": cache.misses,
        "genomes": sum(1 for k in cache.records if not _is_rung_key(k)),
        "rungs": rungs,
        "cache_hits": cache.hits,
        "failures": len(cache.failures),
        "failure_reasons": sorted(set(cache.failures.values()))[:20],
        "per_model_time": per_model,
        "evolve_seconds": elapsed,
        "train_best": {"test_accuracy": trained.test_accuracy, "test_loss": trained.test_loss,
                       "val_accuracy": trained.val_accuracy, "epochs": trained.epochs,
                       "best_epoch": trained.best_epoch, "seconds": best_seconds,
                       "model": "best.keras", "genome": "best.json"},
        "test_accuracy": trained.test_accuracy,
        "weights": params,
        "wall_seconds": elapsed + best_seconds,
        "space": space.to_dict(),
        "config": config_dict(config),
    }
    folder.write_json("result.json", result)
    return to_jsonable(result)

