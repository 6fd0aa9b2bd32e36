"""deapnn's generation loop: DEAP's algorithms, one generation at a time, with exact resume.

:func:`evolve` is built from DEAP's pieces (``algorithms.varAnd`` / ``varOr``, the toolbox's
``select``, ``generate`` and ``update``, ``tools.Statistics`` or ``MultiStatistics``,
``HallOfFame``, ``Logbook``) and makes the same random draws in the same order as
``eaSimple``, ``eaMuPlusLambda``, ``eaMuCommaLambda`` and ``eaGenerateUpdate``, so a seeded run
gives DEAP's population, hall of fame and logbook. Around each generation it adds what a long
run needs: fitness checks (a NaN is a recorded failure), a checkpoint written atomically after
every generation, an evaluation store that keeps every finished evaluation of a generation cut
short, stopping rules, and setup errors that stop the run at once.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import numbers
import os
import time
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence

from deap import algorithms, tools

from deapnn.core import checkpoint as _ckpt
from deapnn.core import seeding
from deapnn.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: F401
from deapnn.core.failures import Failure, SetupError, check_fitness

__all__ = ["ALGORITHMS", "STOP_RULES", "evolve", "load_checkpoint", "run_settings", "save_checkpoint"]

#: The ``algorithm=`` values of :func:`evolve` and the DEAP algorithm each one reproduces.
ALGORITHMS = {
    "simple": "eaSimple",
    "mu+lambda": "eaMuPlusLambda",
    "mu,lambda": "eaMuCommaLambda",
    "generate_update": "eaGenerateUpdate",
}

#: The stopping rules, in the order they are checked; ``logbook.stop_reason`` starts with one.
STOP_RULES = ("target", "max_evaluations", "max_time", "patience")

#: Toolbox entries left out of the settings fingerprint: how evaluations are run, not what they are.
_NOT_SETTINGS = frozenset({"map", "clone", "evaluate", "cache"})


# ---------------------------------------------------------------------------------- arguments
def _check_probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:  # NaN fails too
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def _check_int(name: str, value: Any, low: int, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _check_arguments(population, toolbox, ngen, algorithm, cxpb, mutpb, mu, lambda_, target, patience,
                     max_time, max_evaluations):
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {tuple(ALGORITHMS)}, got {algorithm!r}")
    if isinstance(ngen, bool) or not isinstance(ngen, numbers.Integral):
        raise TypeError(f"ngen must be a non-negative int, got {ngen!r}")
    if ngen < 0:
        raise ValueError(f"ngen must be a non-negative int, got {ngen!r}")
    cxpb, mutpb = _check_probability("cxpb", cxpb), _check_probability("mutpb", mutpb)
    if algorithm in ("mu+lambda", "mu,lambda"):
        if mu is None or lambda_ is None:
            raise ValueError(f"algorithm {algorithm!r} needs mu and lambda_, got mu={mu!r}, lambda_={lambda_!r}")
        mu, lambda_ = _check_int("mu", mu, 1), _check_int("lambda_", lambda_, 1)
        if algorithm == "mu,lambda" and lambda_ < mu:
            raise ValueError(f"algorithm 'mu,lambda' needs lambda_ >= mu, got mu={mu}, lambda_={lambda_}")
        if cxpb + mutpb > 1.0:
            raise ValueError(f"cxpb + mutpb must be <= 1 for {algorithm!r} (varOr), got {cxpb} + {mutpb}")
    elif mu is not None or lambda_ is not None:
        raise ValueError(f"mu and lambda_ are for 'mu+lambda' and 'mu,lambda', not {algorithm!r} "
                         f"(got mu={mu!r}, lambda_={lambda_!r})")
    if algorithm == "generate_update":
        missing = [name for name in ("generate", "update") if not callable(getattr(toolbox, name, None))]
        if missing:
            raise TypeError(f"algorithm 'generate_update' needs toolbox.{missing[0]} (a strategy's "
                            f"generate/update, as for eaGenerateUpdate)")
    else:
        missing = [name for name in ("mate", "mutate", "select") if not callable(getattr(toolbox, name, None))]
        if missing:
            raise TypeError(f"algorithm {algorithm!r} needs toolbox.{missing[0]}")
    for name in ("evaluate", "map"):
        if not callable(getattr(toolbox, name, None)):
            raise TypeError(f"toolbox.{name} must be registered")
    if population is not None and not isinstance(population, Sequence):
        raise TypeError(f"population must be a list of individuals, got {type(population).__name__}")
    if target is not None:
        if isinstance(target, bool) or not isinstance(target, numbers.Real) or math.isnan(target):
            raise ValueError(f"target must be a number (not NaN), got {target!r}")
    patience = _check_int("patience", patience, 1, optional=True)
    max_evaluations = _check_int("max_evaluations", max_evaluations, 1, optional=True)
    if max_time is not None:
        if isinstance(max_time, bool) or not isinstance(max_time, numbers.Real) or not max_time > 0:
            raise ValueError(f"max_time must be a positive number of seconds, got {max_time!r}")
    return int(ngen), cxpb, mutpb, mu, lambda_


# ---------------------------------------------------------------------------------- what the run is
def _unwrap(func: Any) -> Any:
    while isinstance(func, functools.partial):
        func = func.func
    return func


def _has_state(obj: Any) -> bool:
    return callable(getattr(obj, "state", None)) and callable(getattr(obj, "load_state", None))


def _owners(toolbox: Any, algorithm: str = "generate_update", skip: Sequence[Any] = ()) -> list[Any]:
    """The stateful objects a checkpoint must hold besides the evaluator and the cache, each once.

    * With ``generate_update``: the strategies behind ``toolbox.generate`` / ``toolbox.update``
      (bound methods, possibly inside ``functools.partial``), whatever their protocol
      (``deap.cma.Strategy`` has no ``state()``; its ``__dict__`` is saved).
    * With any algorithm: every object with ``state()``/``load_state()`` behind the registered
      ``mate``, ``mutate``, ``select``, ``map``, ``generate`` and ``update`` -- the callable object
      itself, the owner of a bound method, or an argument of a ``functools.partial`` (e.g. a
      learned mutation's controller, a multi-fidelity map, a strategy wrapped by another).

    The order is fixed by the names above, so a resumed run finds them in the same order.
    """
    owners: list[Any] = []

    def add(obj: Any, any_protocol: bool = False) -> None:
        if (obj is None or inspect.ismodule(obj) or isinstance(obj, type)
                or any(obj is o for o in owners) or any(obj is o for o in skip)):
            return
        if any_protocol or _has_state(obj):
            owners.append(obj)

    if algorithm == "generate_update":
        for name in ("generate", "update"):
            add(getattr(_unwrap(getattr(toolbox, name, None)), "__self__", None), any_protocol=True)
    for name in ("mate", "mutate", "select", "map", "generate", "update"):
        func = getattr(toolbox, name, None)
        while func is not None:
            add(getattr(func, "__self__", None))
            if isinstance(func, functools.partial):
                for arg in (*func.args, *func.keywords.values()):
                    add(arg)
                func = func.func
            else:
                add(func)
                func = None
    return owners


def _evaluation_function(toolbox: Any) -> Any:
    """What ``toolbox.evaluate`` computes: partials without arguments and a cache unwrapped."""
    func = getattr(toolbox, "evaluate", None)
    while isinstance(func, functools.partial) and not func.args and not func.keywords:
        func = func.func
    cache = getattr(toolbox, "cache", None)
    return cache.evaluate if cache is not None and func is cache else func


def _evaluator(toolbox: Any) -> Any:
    """The object behind the evaluation function that has ``state()``/``load_state()`` (a
    minibatch step, say), or None."""
    inner = _unwrap(_evaluation_function(toolbox))
    return inner if callable(getattr(inner, "state", None)) and callable(getattr(inner, "load_state", None)) else None


def _fingerprint(obj: Any) -> str:
    try:
        from deapnn.core.fingerprint import fingerprint
    except ImportError:  # pragma: no cover - the module is part of deapnn
        import hashlib
        import pickle

        return hashlib.sha256(pickle.dumps(obj)).hexdigest()
    return fingerprint(obj)


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def _describe(obj: Any) -> str:
    """A readable, stable description of a registered operator: qualified names, argument values."""
    if isinstance(obj, functools.partial):
        parts = [_describe_value(a) for a in obj.args]
        parts += [f"{k}={_describe_value(v)}" for k, v in sorted(obj.keywords.items())]
        return f"{_describe(obj.func)}({', '.join(parts)})"
    if inspect.ismethod(obj):
        return f"{_name(type(obj.__self__))}.{obj.__func__.__name__}"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj):
        return _name(obj)
    wrapped = getattr(obj, "__wrapped__", None)
    if wrapped is not None:  # a decorator object (NovelChildren's operator)
        return f"{_name(type(obj))}[{_describe(wrapped)}]"
    return _name(type(obj))


def _describe_value(value: Any) -> str:
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, (tuple, list)) and all(v is None or isinstance(v, (bool, int, float, str)) for v in value):
        return repr(value)
    if callable(value):
        return _describe(value)
    if _has_state(value):  # its state is checkpointed, and changes as the run goes: its type names it
        return _name(type(value))
    try:
        return f"{type(value).__name__}#{_fingerprint(value)[:16]}"
    except Exception:  # something that can be neither encoded nor pickled: its type only
        return type(value).__name__


def run_settings(population: Sequence[Any] | None, toolbox: Any, *, algorithm: str = "simple",
                 cxpb: float = 0.5, mutpb: float = 0.2, mu: int | None = None, lambda_: int | None = None,
                 stats: Any = None, halloffame: Any = None) -> dict[str, str]:
    """What a checkpoint's run is, as ``{setting: description}``; a resume must match it.

    Holds the algorithm and its probabilities and sizes, the population size, the hall of fame
    and statistics, every operator registered on the toolbox (qualified names and keyword
    arguments; ``map`` is left out: the backend may change), the strategy classes, and the
    evaluator's fingerprint (:func:`deapnn.core.fingerprint.fingerprint`). ``ngen`` and the
    stopping budgets are not settings: a run can always be extended.
    """
    settings = {"algorithm": algorithm}
    if algorithm != "generate_update":
        settings.update(cxpb=repr(cxpb), mutpb=repr(mutpb))
    if algorithm in ("mu+lambda", "mu,lambda"):
        settings.update(mu=repr(mu), lambda_=repr(lambda_))
    if population is not None:
        settings["population size"] = repr(len(population))
    settings["halloffame"] = (
        "None" if halloffame is None else f"{_name(type(halloffame))}(maxsize={getattr(halloffame, 'maxsize', None)!r})"
    )
    settings["stats"] = "None" if stats is None else repr(list(getattr(stats, "fields", [])))
    for name, func in sorted(vars(toolbox).items()):
        if name not in _NOT_SETTINGS and callable(func):
            settings[f"toolbox.{name}"] = _describe(func)
    cache = getattr(toolbox, "cache", None)
    settings["cache"] = "None" if cache is None else _name(type(cache))
    settings["evaluator"] = _fingerprint(_evaluation_function(toolbox))
    return settings


def _compare_settings(path: Path, saved: dict[str, str], now: dict[str, str]) -> None:
    keys = sorted(set(saved) | set(now), key=lambda k: (list(now).index(k) if k in now else len(now), k))
    if "population size" not in now:  # a resume may pass population=None
        keys = [k for k in keys if k != "population size"]
    diffs = [f"{k}: the checkpoint has {saved.get(k, '(none)')}, this call has {now.get(k, '(none)')}"
             for k in keys if saved.get(k) != now.get(k)]
    if diffs:
        raise CheckpointError(
            f"checkpoint {str(path)!r} belongs to a run with other settings; "
            + "; ".join(diffs)
            + ". Resume with the settings it was written with, or use a new checkpoint file."
        )


# ---------------------------------------------------------------------------------- state
def _object_state(obj: Any) -> dict[str, Any]:
    if _has_state(obj):
        return {"protocol": "state", "state": obj.state()}
    return {"protocol": "dict", "state": copy.deepcopy(obj.__dict__)}  # e.g. deap.cma.Strategy


def _load_object_state(obj: Any, saved: dict[str, Any]) -> None:
    if saved["protocol"] == "state":
        obj.load_state(saved["state"])
    else:
        obj.__dict__.clear()
        obj.__dict__.update(copy.deepcopy(saved["state"]))


def _failed(ind: Any) -> bool:
    """Whether an evaluated individual holds a failure's (worst) values."""
    wvalues = ind.fitness.wvalues
    return bool(wvalues) and all(w == -math.inf for w in wvalues)


def _best(individuals: Sequence[Any]) -> float:
    """The best weighted first objective among ``individuals`` (``-inf`` if none)."""
    values = [ind.fitness.wvalues[0] for ind in individuals if ind.fitness.valid]
    values = [v for v in values if not math.isnan(v)]
    return max(values, default=-math.inf)


class _Run:
    """The mutable state of one :func:`evolve` call that a checkpoint holds."""

    def __init__(self) -> None:
        self.gen = 0  # the next generation to run
        self.population: list[Any] | None = None
        self.logbook = tools.Logbook()
        self.logbook.stop_reason = None
        self.evaluations = 0
        self.best = -math.inf
        self.stale = 0
        self.elapsed = 0.0


# ---------------------------------------------------------------------------------- the loop
def evolve(
    population: list[Any] | None,
    toolbox: Any,
    ngen: int,
    *,
    algorithm: str = "simple",
    cxpb: float = 0.5,
    mutpb: float = 0.2,
    mu: int | None = None,
    lambda_: int | None = None,
    stats: tools.Statistics | tools.MultiStatistics | None = None,
    halloffame: tools.HallOfFame | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    store: Any = None,
    target: float | None = None,
    patience: int | None = None,
    max_time: float | None = None,
    max_evaluations: int | None = None,
    extend: bool = False,
    retry_failed: bool = False,
    progress: bool = False,
    verbose: bool = False,
) -> tuple[list[Any] | None, tools.Logbook]:
    """Evolve ``population`` with one of DEAP's algorithms, checkpointed and resumable.

    Pseudocode (``"simple"``; the other algorithms change the marked lines as DEAP's do)::

        if checkpoint exists: check its settings, restore population, generation g, hall of
            fame, logbook, cache, strategy and evaluator state, counters and every RNG;
            if it had stopped (a stopping rule) and not extend: return it
        else: g = 0
        check the checkpoint's folder is writable; attach the evaluation store to the cache
        for gen in g .. ngen:
            if gen == 0: offspring = population                          # generate_update: generate()
            else: offspring = varAnd(select(population, len(population)), toolbox, cxpb, mutpb)
                                                      # mu+lambda / mu,lambda: varOr(population, ...)
            evaluate the offspring with an invalid fitness through toolbox.map;
                check_fitness(value, weights): a NaN becomes a recorded Failure (worst values)
            hall of fame.update(offspring that did not fail)
            population[:] = offspring      # mu+lambda: select(population + offspring, mu);
                                           # mu,lambda: select(offspring, mu); generate_update: update()
            logbook.record(gen, nevals, **stats.compile(population), elapsed)
            save the checkpoint (atomic)
            if every fresh evaluation failed with one reason: raise SetupError(reason)
            if a stopping rule holds: logbook.stop_reason = why; stop

    Args:
        population: The initial population (ignored when resuming; may be None for
            ``"generate_update"``). Like DEAP, it is replaced in place when it is a list.
        toolbox: A DEAP toolbox with ``evaluate``, ``map`` and ``mate``/``mutate``/``select``
            (or ``generate``/``update`` for ``"generate_update"``: :class:`~deapnn.weights.OpenAIES`,
            :class:`~deapnn.weights.SNES`, the Evo-NAS agents, ``deap.cma.Strategy``), and
            optionally ``cache`` (an :class:`~deapnn.core.cache.EvaluationCache`).
        ngen: Generations, as in DEAP (``"simple"`` and the mu/lambda algorithms run generations
            0..ngen, 0 being the initial evaluation; ``"generate_update"`` runs 0..ngen-1).
            Counts the generations already in the checkpoint; a larger ``ngen`` continues a run.
        algorithm: ``"simple"`` (eaSimple), ``"mu+lambda"`` (eaMuPlusLambda), ``"mu,lambda"``
            (eaMuCommaLambda) or ``"generate_update"`` (eaGenerateUpdate).
        cxpb, mutpb: Crossover and mutation probabilities, in [0, 1] (their sum <= 1 for varOr).
        mu, lambda_: For ``"mu+lambda"`` and ``"mu,lambda"`` only (``lambda_ >= mu`` for the latter).
        stats: ``tools.Statistics`` or ``tools.MultiStatistics`` (every chapter is kept).
        halloffame: Updated in place, restored in place (same order, ties included) on resume.
        checkpoint: A file written atomically after every generation; when it exists the run
            resumes from it. A missing folder is created; an unwritable one raises at once.
        store: An :class:`~deapnn.core.store.EvaluationStore` or a path, attached to
            ``toolbox.cache``; default with a checkpoint: ``<checkpoint>.sqlite``. Every finished
            evaluation is committed to it, so a run killed mid-generation replays that generation
            from the checkpoint (same random draws) with the finished evaluations answered from it.
        target: Stop when the best fitness (first objective) reaches it (``>=`` when maximised).
        patience: Stop after this many generations without improvement of the best fitness.
        max_time: Stop when the wall time, summed over resumes, reaches this many seconds.
        max_evaluations: Stop when this many distinct evaluations were made (genomes new to the
            cache's records; without a cache, the individuals evaluated).
        extend: Continue a checkpointed run that had stopped by a rule, if the budgets of this
            call allow it (without ``extend`` it stays stopped). ``ngen`` can always be raised.
            A resumed run checks the rules with this call's budgets before its first generation.
        retry_failed: Evaluate the cache's infrastructure failures (timeouts, dead workers) again.
        progress: Show a tqdm progress bar over generations.
        verbose: Print the logbook stream, as DEAP's ``verbose=True``.

    Returns:
        ``(population, logbook)`` as DEAP returns them; ``logbook.stop_reason`` is None when all
        generations ran, else a str starting with the rule that stopped it (:data:`STOP_RULES`).
        Each record also has ``elapsed``, the wall time so far (summed over resumes).

    Raises:
        ValueError, TypeError: For a bad argument (named in the message).
        CheckpointError: For a checkpoint that is corrupt, from another deapnn version or format,
            from another run (the message names every setting that differs) or cannot be written.
        SetupError: When every evaluation of a generation (at least two) failed with the same
            reason (after the checkpoint is saved); or as raised by the evaluator.

    Randomness: Python's ``random`` (DEAP's operators), numpy's global generator
    (``deap.cma``) and deapnn's generator (:func:`deapnn.core.seeding.get_rng`), in the order
    DEAP's algorithms draw them; all saved in and restored from the checkpoint, with the
    strategies' own generators.
    """
    ngen, cxpb, mutpb, mu, lambda_ = _check_arguments(
        population, toolbox, ngen, algorithm, cxpb, mutpb, mu, lambda_, target, patience, max_time,
        max_evaluations)
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a path, got {checkpoint!r}")
    cache = getattr(toolbox, "cache", None)
    if retry_failed and not callable(getattr(cache, "retry_failed", None)):
        raise ValueError("retry_failed=True needs toolbox.cache (an EvaluationCache)")
    resuming = checkpoint is not None and Path(checkpoint).exists()
    if population is None and algorithm != "generate_update" and not resuming:
        raise ValueError(f"algorithm {algorithm!r} needs a population")
    if population is not None and algorithm != "generate_update" and len(population) == 0:
        raise ValueError("population is empty")
    evaluator = _evaluator(toolbox)
    owners = _owners(toolbox, algorithm, skip=(evaluator, getattr(toolbox, "cache", None)))
    settings = run_settings(population, toolbox, algorithm=algorithm, cxpb=cxpb, mutpb=mutpb, mu=mu,
                            lambda_=lambda_, stats=stats, halloffame=halloffame)

    run = _Run()
    run.population = population
    path = None
    if checkpoint is not None:
        path = _ckpt.check_writable(checkpoint)
        if path.exists():
            state = load_checkpoint(path)
            if state.get("kind") != "evolve":
                raise CheckpointError(f"{str(path)!r} is a deapnn checkpoint of another kind of run "
                                      f"({state.get('kind')!r}), not of evolve()")
            _compare_settings(path, state["settings"], settings)
            if "population size" in state["settings"]:  # a resume with population=None keeps it
                settings["population size"] = state["settings"]["population size"]
            _restore(state, run, population, toolbox, cache, owners, evaluator, halloffame)
    store = _open_store(store, path, cache)
    if retry_failed:
        cache.retry_failed()

    if run.logbook.stop_reason is None or extend:  # the budgets of this call, checked at once
        run.logbook.stop_reason = _stop_reason(run, target, patience, max_time, max_evaluations)
    stopped = run.logbook.stop_reason
    last = ngen - 1 if algorithm == "generate_update" else ngen
    if stopped is not None or run.gen > last:
        return run.population, run.logbook

    attached = store is None
    clock = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=last + 1, initial=run.gen, desc="Evolving", unit="gen")
    try:
        for gen in range(run.gen, last + 1):
            if cache is not None and hasattr(cache, "generation"):
                cache.generation = gen
            # Variation first: its random draws (and a novelty check's cache lookups) are those of
            # an uninterrupted run, so the store is attached only after them.
            if algorithm == "generate_update":
                offspring = toolbox.generate()
                invalid = list(offspring)
            elif gen == 0:
                offspring = run.population
                invalid = [ind for ind in offspring if not ind.fitness.valid]
            else:
                if algorithm == "simple":
                    offspring = algorithms.varAnd(toolbox.select(run.population, len(run.population)),
                                                  toolbox, cxpb, mutpb)
                else:
                    offspring = algorithms.varOr(run.population, toolbox, lambda_, cxpb, mutpb)
                invalid = [ind for ind in offspring if not ind.fitness.valid]
            if not attached:
                cache.attach(store, _fingerprint(_evaluation_function(toolbox)))
                attached = True
            fresh, failures = _evaluate(invalid, toolbox, cache)
            run.evaluations += fresh
            if halloffame is not None:
                halloffame.update([ind for ind in offspring if not _failed(ind)])
            if algorithm == "generate_update":
                toolbox.update(offspring)
                run.population = offspring
            elif gen == 0:
                pass
            elif algorithm == "simple":
                _replace(run, offspring)
            elif algorithm == "mu+lambda":
                _replace(run, toolbox.select(run.population + offspring, mu))
            else:
                _replace(run, toolbox.select(offspring, mu))

            best = _best(offspring)
            if best > run.best:
                run.best, run.stale = best, 0
            else:
                run.stale += 1
            now = time.perf_counter()
            run.elapsed, clock = run.elapsed + now - clock, now
            record = stats.compile(run.population) if stats is not None else {}
            run.logbook.record(gen=gen, nevals=len(invalid), **record, elapsed=run.elapsed)
            if not run.logbook.header:
                run.logbook.header = ["gen", "nevals"] + (list(stats.fields) if stats else [])
                for name, chapter in run.logbook.chapters.items():  # MultiStatistics: as DEAP's examples
                    if not chapter.header and callable(getattr(stats, "get", None)):
                        chapter.header = list(getattr(stats.get(name), "fields", [])) or None
            if verbose:
                print(run.logbook.stream)
            run.gen = gen + 1
            setup_error = _common_failure(failures)
            if setup_error is None:
                run.logbook.stop_reason = _stop_reason(run, target, patience, max_time, max_evaluations)
            if path is not None:
                _ckpt.save_checkpoint(path, _state(run, settings, algorithm, toolbox, cache, owners, evaluator,
                                                   halloffame))
            if setup_error is not None:
                raise SetupError(
                    f"every evaluation of generation {gen} ({len(failures)}) failed with the same reason: "
                    f"{setup_error}" + (f" (checkpoint saved in {str(path)!r})" if path is not None else "")
                )
            if bar is not None:
                bar.update(1)
                bar.set_postfix(best=run.best)
            if run.logbook.stop_reason is not None:
                break
    finally:
        if bar is not None:
            bar.close()
    return run.population, run.logbook


def _replace(run: _Run, new: list[Any]) -> None:
    """DEAP's ``population[:] = new``: the caller's list is updated in place."""
    if isinstance(run.population, list):
        run.population[:] = new
    else:
        run.population = list(new)


def _evaluate(invalid: list[Any], toolbox: Any, cache: Any) -> tuple[int, list[Any]]:
    """Evaluate ``invalid`` through ``toolbox.map`` and assign checked fitnesses.

    Returns:
        The number of fresh evaluations (distinct keys not in the cache's records before; all of
        ``invalid`` without a cache) and the results of the fresh ones.
    """
    records = getattr(cache, "records", None)
    key: Callable[[Any], Hashable] | None = getattr(cache, "key", None)
    fresh_index: list[int] = []
    if records is not None and key is not None:
        seen: set[Hashable] = set()
        for i, ind in enumerate(invalid):
            k = key(ind)
            if k not in records and k not in seen:
                seen.add(k)
                fresh_index.append(i)
    else:
        fresh_index = list(range(len(invalid)))
    results = list(toolbox.map(toolbox.evaluate, invalid)) if invalid else []
    if len(results) != len(invalid):
        raise RuntimeError(f"toolbox.map returned {len(results)} fitnesses for {len(invalid)} individuals")
    checked = []
    for ind, fit in zip(invalid, results):
        fit = check_fitness(fit, ind.fitness.weights)
        ind.fitness.values = fit
        checked.append(fit)
    return len(fresh_index), [checked[i] for i in fresh_index]


def _common_failure(results: list[Any]) -> str | None:
    """The reason, when at least two fresh evaluations all failed with that one reason."""
    if len(results) < 2 or not all(isinstance(r, Failure) for r in results):
        return None
    reasons = {r.reason for r in results}
    return reasons.pop() if len(reasons) == 1 else None


def _stop_reason(run: _Run, target, patience, max_time, max_evaluations) -> str | None:
    if run.gen == 0:
        return None
    if target is not None and run.population:
        weight = _first_weight(run.population)
        if weight is not None and run.best >= target * weight:
            return f"target: best fitness {run.best / weight!r} reached the target {target!r}"
    if max_evaluations is not None and run.evaluations >= max_evaluations:
        return f"max_evaluations: {run.evaluations} evaluations made, the budget is {max_evaluations}"
    if max_time is not None and run.elapsed >= max_time:
        return f"max_time: {run.elapsed:.3f} s of wall time spent, the budget is {max_time} s"
    if patience is not None and run.stale >= patience:
        return f"patience: no improvement of the best fitness for {run.stale} generations"
    return None


def _first_weight(population: Sequence[Any]) -> float | None:
    for ind in population:
        weights = getattr(ind.fitness, "weights", None)
        if weights:
            return float(weights[0])
    return None


def _open_store(store: Any, path: Path | None, cache: Any) -> Any:
    """The store to attach to the cache (opened now, so a bad file fails before any work)."""
    if store is None and path is None:
        return None
    if cache is None or not callable(getattr(cache, "attach", None)):
        if store is not None:
            raise ValueError("store= needs toolbox.cache (an EvaluationCache) to attach to")
        return None
    if store is None:
        if getattr(cache, "store", None) is not None:
            return cache.store  # the user attached one already: keep it
        store = Path(str(path) + ".sqlite")
    if isinstance(store, (str, os.PathLike)):
        from deapnn.core.store import EvaluationStore

        store = EvaluationStore(store)
    return store


def _state(run: _Run, settings, algorithm, toolbox, cache, owners, evaluator, halloffame) -> dict[str, Any]:
    return {
        "kind": "evolve",
        "algorithm": algorithm,
        "settings": settings,
        "generation": run.gen,
        "population": run.population,
        "halloffame": None if halloffame is None else {"items": halloffame.items, "keys": halloffame.keys},
        "logbook": run.logbook,
        "stop_reason": run.logbook.stop_reason,
        "cache": cache.state() if callable(getattr(cache, "state", None)) else None,
        "strategies": [_object_state(o) for o in owners],
        "evaluator": None if evaluator is None else evaluator.state(),
        "rng": seeding.get_state(),
        "evaluations": run.evaluations,
        "best": run.best,
        "stale": run.stale,
        "elapsed": run.elapsed,
    }


def _restore(state, run, population, toolbox, cache, owners, evaluator, halloffame) -> None:
    run.gen = state["generation"]
    run.population = state["population"]
    if isinstance(population, list) and run.population is not None:
        population[:] = run.population
        run.population = population
    run.logbook = state["logbook"]
    run.logbook.stop_reason = state["stop_reason"]
    run.evaluations, run.best, run.stale = state["evaluations"], state["best"], state["stale"]
    run.elapsed = state["elapsed"]
    if halloffame is not None and state["halloffame"] is not None:
        # Restore items and keys as saved: HallOfFame.insert would order tied fitnesses anew.
        halloffame.clear()
        halloffame.items[:] = state["halloffame"]["items"]
        halloffame.keys[:] = state["halloffame"]["keys"]
    if cache is not None and state["cache"] is not None:
        cache.load_state(state["cache"])
    if len(state["strategies"]) != len(owners):
        raise CheckpointError(f"the checkpoint holds {len(state['strategies'])} strategies, "
                              f"the toolbox has {len(owners)}")
    for owner, saved in zip(owners, state["strategies"]):
        _load_object_state(owner, saved)
    if state["evaluator"] is not None and evaluator is not None:
        evaluator.load_state(state["evaluator"])
    seeding.set_state(state["rng"])
