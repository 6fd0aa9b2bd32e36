"""The weight job: evolve every weight of a network as one vector, on a wall-clock budget.

The job behind ``deapnn weights`` and the weight arms of ``deapnn compare``. Strategies:

* ``ga``: DEAP's ``eaSimple`` (:func:`deapnn.evolve`, ``algorithm="simple"``) on
  :func:`deapnn.weights.make_weight_toolbox`'s toolbox, re-registered with blend crossover,
  per-layer-scaled Gaussian mutation annealed over ``ngen`` generations, or else the budget
  (:class:`AnnealedGaussian`), and elitist tournament selection; fitness minus the
  cross-entropy on a training minibatch resampled every generation
  (:class:`deapnn.weights.BatchedEvaluator`).
* ``es``: :class:`deapnn.weights.OpenAIES` through ``eaGenerateUpdate`` (``algorithm=
  "generate_update"``); same fitness.
* ``snes``: :class:`deapnn.weights.SNES` likewise.
* ``pgpe``: :class:`deapnn.weights.PGPE` (symmetric sampling, per-weight sigmas, ClipUp) likewise.
* ``sepcma``: :class:`deapnn.weights.SepCMAES` (separable CMA-ES) likewise.
* ``cma``: DEAP's own ``cma.Strategy`` (full covariance: small networks, at most
  :data:`deapnn.weights.cma.CMA_MAX_WEIGHTS` weights) likewise.

The GA's toolbox is honest (:mod:`deapnn.weights.minibatch`): survivors are re-scored on the
current minibatch before each selection.

Generations run in chunks of :func:`deapnn.evolve` calls on one checkpoint (``checkpoint.pkl``:
population, hall of fame, strategy and evaluator state, every RNG, logbook; written after every
generation). Between chunks the clock stops while the current model (the ES mean, or the GA
individual with the best validation accuracy among the five fittest) is scored on the validation
split and, for the report only, on the test split; then the job's own state (the accuracy curve,
the clock) is written to ``weights_state.json``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deapnn.jobs.common import (BadInput, Progress, RunFolder, config_dict, format_seconds,
                                load_data, to_jsonable, write_logbook)

__all__ = ["AnnealedGaussian", "WeightsConfig", "network_spec", "run_weights"]

STRATEGIES = ("ga", "es", "snes", "pgpe", "sepcma", "cma")
#: The job's own state beside the checkpoint: the curve and the clock, written after each chunk.
STATE_FILE = "weights_state.json"
DEFAULTS = {  # per strategy: population, minibatch, sigma
    "ga": (100, 128, 0.2),
    "es": (200, 64, 0.05),
    "snes": (100, 64, 0.05),
    "pgpe": (100, 128, 0.05),
    "sepcma": (100, 128, 0.05),
    "cma": (40, 128, 0.1),
}


#: Default step sizes: OpenAI-ES's Adam, PGPE's ClipUp (max speed twice the step).
LEARNING_RATES = {"es": 0.02, "pgpe": 0.15}


@dataclass
class WeightsConfig:
    """Settings of a weight-evolution run (``deapnn weights --help`` describes each)."""

    data: str = "mnist"
    scale: float | None = None
    strategy: str = "ga"
    arch: str = "auto"
    hidden: list[int] = field(default_factory=lambda: [32])
    filters: int = 8
    model: str | None = None
    population: int | None = None
    ngen: int | None = None
    budget: float | None = None
    batch: int | None = None
    sigma: float | None = None
    sigma_final: float = 0.02
    cxpb: float = 0.5
    mutpb: float = 0.9
    alpha: float = 0.0
    tournsize: int = 5
    elites: int = 5
    learning_rate: float | None = None
    lr_decay: float = 0.9997
    sigma_decay: float = 0.9999
    weight_decay: float = 0.0
    eval_every: float = 10.0
    seed: int = 0
    workers: int = 1
    backend: str = "serial"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise BadInput(f"--strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.arch not in ("auto", "mlp", "conv"):
            raise BadInput(f"--arch must be auto, mlp or conv, got {self.arch!r}")
        if self.ngen is None and self.budget is None:
            raise BadInput("give --budget or --ngen (or both)")
        if any(h < 1 for h in self.hidden):
            raise BadInput(f"--hidden sizes must be positive, got {self.hidden!r}")
        for name in ("population", "ngen", "batch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BadInput(f"--{name} must be a positive integer, got {value!r}")
        if self.strategy in ("es", "pgpe") and self.population is not None and self.population % 2:
            raise BadInput(f"--population of {self.strategy} must be even (mirrored pairs), got {self.population}")
        if self.strategy in ("es", "pgpe") and self.population is not None and self.population < 2:
            raise BadInput(f"--population of {self.strategy} must be at least 2, got {self.population}")
        if self.learning_rate is not None and not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise BadInput(f"--learning-rate must be a positive number, got {self.learning_rate!r}")
        for name in ("sigma", "sigma_final"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise BadInput(f"--{name.replace('_', '-')} must be a positive number, got {value!r}")
        for name in ("cxpb", "mutpb"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise BadInput(f"--{name} must be a probability in [0, 1], got {getattr(self, name)!r}")
        if self.model is not None and not os.path.isfile(self.model):
            raise BadInput(f"--model {self.model!r} does not exist")
        if self.backend not in ("serial", "processes", "scoop"):
            raise BadInput(f"--backend must be serial, processes or scoop, got {self.backend!r}")


def network_spec(config: WeightsConfig, input_shape: tuple[int, ...], n_classes: int) -> Any:
    """The network of a run: a saved ``.keras`` model, an MLP or the small conv front end.

    ``arch="auto"`` is the conv front end (Conv2D(``filters``, 5x5, stride 2) -> 2x2 max pool ->
    ``hidden`` -> softmax) for 2-D images at least 20 pixels wide, else an MLP
    ``input-hidden-n_classes``. A saved model is returned as loaded (Keras).
    """
    from deapnn.weights import Conv2DSpec, DenseSpec, FlattenSpec, NetworkSpec, PoolSpec, ReshapeSpec

    if config.model is not None:
        import keras

        try:
            model = keras.models.load_model(config.model, compile=False)
        except Exception as exc:  # noqa: BLE001 - a bad file is the user's to fix
            raise BadInput(f"--model {config.model!r} cannot be loaded: {exc}") from exc
        if tuple(model.input_shape[1:]) != tuple(input_shape):
            raise BadInput(f"--model {config.model!r} takes inputs of shape "
                           f"{tuple(model.input_shape[1:])}, the data has {tuple(input_shape)}")
        return model
    arch = config.arch
    if arch == "auto":
        arch = "conv" if len(input_shape) == 2 and min(input_shape) >= 20 else "mlp"
    if arch == "mlp":
        return NetworkSpec.mlp(tuple(input_shape), list(config.hidden), n_classes)
    if len(input_shape) not in (2, 3) or min(input_shape[:2]) < 10:
        raise BadInput(f"--arch conv needs images at least 10x10, the data has {tuple(input_shape)}")
    shape = tuple(input_shape) if len(input_shape) == 3 else (*input_shape, 1)
    layers = [ReshapeSpec(shape), Conv2DSpec(config.filters, (5, 5), (2, 2), "valid", "relu"),
              PoolSpec("max", (2, 2)), FlattenSpec()]
    hidden = config.hidden if config.arch == "conv" else []  # auto: the front end alone
    layers += [DenseSpec(h, "relu") for h in hidden]
    layers.append(DenseSpec(n_classes, "softmax"))
    return NetworkSpec(tuple(input_shape), tuple(layers))


def _describe(spec: Any) -> str:
    from deapnn.weights import NetworkSpec

    if not isinstance(spec, NetworkSpec):
        return "saved Keras model"
    parts = []
    for layer in spec.layers:
        name = type(layer).__name__[:-4]
        if name == "Dense":
            parts.append(str(layer.units))
        elif name == "Conv2D":
            parts.append(f"conv{layer.filters}")
        elif name == "Pool":
            parts.append("pool")
    return "-".join([str(int(np.prod(spec.input_shape)))] + parts)


class _Clock:
    """Optimisation time: stops while progress is measured; resumes from ``elapsed``/``paused``."""

    def __init__(self, elapsed: float = 0.0, paused: float = 0.0) -> None:
        self.start = time.perf_counter() - elapsed - paused
        self.paused = paused

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def pause(self, fn):
        t = time.perf_counter()
        try:
            return fn()
        finally:
            self.paused += time.perf_counter() - t


class AnnealedGaussian:
    """Per-layer-scaled Gaussian mutation of every weight, its step decaying geometrically.

    Each weight ``i`` moves by ``N(0, scale_i * s)`` (:func:`deapnn.weights.mut_gaussian`,
    ``indpb=1``) with ``s = sigma * (sigma_final / sigma) ** p`` at the schedule's progress ``p``
    in [0, 1]. Registered once as ``toolbox.mutate``: :func:`deapnn.evolve` describes a registered
    object by its class (:func:`deapnn.core.loop.run_settings`), so the step anneals without
    changing the checkpoint's settings.

    Progress is ``progress``, which the job sets to the fraction of the budget spent before each
    chunk of generations; or, given ``ngen``, ``(g - 1) / ngen`` for the generation ``g`` being
    bred, read from the evaluator's minibatch step (the map advances it once per generation and
    the checkpoint restores it), so an ``--ngen`` run anneals alike however its generations are
    chunked, interrupted and resumed.

    Randomness: the noise comes from :func:`deapnn.core.seeding.get_rng` (``mut_gaussian``'s default).
    """

    def __init__(self, scale: np.ndarray, sigma: float, sigma_final: float, *,
                 evaluator: Any = None, ngen: int | None = None) -> None:
        if ngen is not None and evaluator is None:
            raise ValueError("AnnealedGaussian: ngen= needs the evaluator whose step counts generations")
        self.scale = np.asarray(scale, dtype=np.float32)
        self.sigma, self.sigma_final = float(sigma), float(sigma_final)
        self.evaluator, self.ngen = evaluator, ngen
        self.progress = 0.0
        self._step: tuple[float, np.ndarray] | None = None  # (s, scale * s), reused while s holds

    def current_sigma(self) -> float:
        """The step ``s`` of the next mutation."""
        progress = self.progress
        if self.ngen is not None:
            progress = (self.evaluator.step - 1) / max(self.ngen, 1)
        return self.sigma * (self.sigma_final / self.sigma) ** min(max(progress, 0.0), 1.0)

    def __call__(self, individual: Any) -> tuple[Any]:
        from deapnn.weights import mut_gaussian

        sigma = self.current_sigma()
        if self._step is None or self._step[0] != sigma:
            self._step = (sigma, self.scale * np.float32(sigma))
        return mut_gaussian(individual, 0.0, self._step[1], 1.0)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_step": None}


def _evaluator(spec: Any, data: Any, batch: int, seed: int) -> Any:
    """The run's :class:`deapnn.weights.BatchedEvaluator` on the training split."""
    from deapnn.weights import BatchedEvaluator

    return BatchedEvaluator(spec, data.x_train, data.y_train, batch_size=batch, seed=seed)


def _toolbox(config: WeightsConfig, spec: Any, evaluator: Any,
             population: int) -> tuple[Any, Any, AnnealedGaussian | None]:
    """The weight toolbox of a run, and its strategy (ES / SNES) or annealed mutation (GA)."""
    from deap import creator

    from deapnn.weights import (PGPE, SNES, OpenAIES, SepCMAES, cma_strategy, cx_blend,
                                make_weight_toolbox, sel_elitist_tournament)

    strategy = annealing = None
    sigma = config.sigma if config.sigma is not None else DEFAULTS[config.strategy][2]
    lr = config.learning_rate if config.learning_rate is not None else LEARNING_RATES.get(config.strategy)
    if config.strategy == "ga":
        # the selection is given to the factory, which wraps it to re-score survivors (honest)
        tb = make_weight_toolbox(evaluator, evaluator, mate=cx_blend, mate_kwargs={"alpha": config.alpha},
                                 select=sel_elitist_tournament,
                                 select_kwargs={"tournsize": config.tournsize,
                                                "elites": min(config.elites, population)})
    else:
        tb = make_weight_toolbox(evaluator, evaluator)
    if config.backend != "serial":
        from deapnn.parallel import register_backend

        register_backend(tb, config.backend, workers=config.workers)  # keeps the honest map (GA)
    start = tb.individual() if config.strategy != "ga" else None
    if start is not None and config.model is not None:  # the strategies start from the saved model's weights
        from deapnn.weights import WeightCodec

        start[:] = WeightCodec(spec).encode()
    if config.strategy == "ga":
        # with --ngen the schedule follows the generations (reproducible), else the budget's clock
        annealing = AnnealedGaussian(tb.layout.init_std("glorot", biases=True), sigma,
                                     config.sigma_final, evaluator=evaluator, ngen=config.ngen)
        tb.register("mutate", annealing)
    elif config.strategy == "es":
        strategy = OpenAIES(start, sigma=sigma, lambda_=population,
                            learning_rate=lr, weight_decay=config.weight_decay,
                            learning_rate_decay=config.lr_decay,
                            learning_rate_limit=lr * 0.1,
                            sigma_decay=config.sigma_decay, sigma_limit=sigma * 0.2)
    elif config.strategy == "snes":
        strategy = SNES(start, sigma=sigma, lambda_=population)
    elif config.strategy == "pgpe":
        strategy = PGPE(start, sigma=sigma, lambda_=population, learning_rate=lr,
                        weight_decay=config.weight_decay, learning_rate_decay=config.lr_decay,
                        learning_rate_limit=lr * 0.1)
    elif config.strategy == "sepcma":
        strategy = SepCMAES(start, sigma=sigma, lambda_=population)
    else:
        try:
            strategy = cma_strategy(start, sigma, lambda_=population)
        except ValueError as exc:
            raise BadInput(f"--strategy cma: {exc}") from exc
    if strategy is not None:
        tb.register("generate", strategy.generate, creator.WeightVector)
        tb.register("update", strategy.update)
    return tb, strategy, annealing


def _generations(logbook: Any, algorithm: str) -> int:
    """Generations bred so far: the initial evaluation (GA's generation 0) is not one."""
    if not len(logbook):
        return 0
    last = int(logbook[-1]["gen"])
    return last + 1 if algorithm == "generate_update" else last


def run_weights(folder: RunFolder, config: WeightsConfig, *, quiet: bool = False, data: Any = None,
                label: str | None = None, log=print) -> dict:
    """Run (or resume) a weight-evolution job in ``folder``; returns the result (``result.json``).

    Evolution runs through :func:`deapnn.evolve` in chunks of generations (``checkpoint.pkl``,
    ``extend=True``: each call continues the last); between chunks the clock stops while the
    current model is measured, and the job's own state (the curve, the clock) is written to
    ``weights_state.json``.

    Randomness: :func:`deapnn.seed` ``(config.seed)`` seeds Python's ``random`` (DEAP's selection
    and variation choices), numpy's and deapnn's generator (initial weights, mutations, ES
    noise); the minibatches come from the evaluator's own ``(seed, step)`` draws. The checkpoint
    holds them all. With ``ngen`` the GA anneals its mutation by generation, and the run is
    reproducible (resumed or not) as long as ``ngen`` generations fit in the budget; with a
    budget alone it anneals by the wall clock, so the run is not bit-for-bit reproducible.
    """
    import deapnn
    from deapnn.core.console import import_tensorflow
    from deapnn.weights import hall_of_fame

    label = label or config.strategy
    say = (lambda *a, **k: None) if quiet else log
    if data is None:
        data = load_data(config.data, config.scale, config.seed)
    result = folder.read_json("result.json")
    if result is not None:
        return result
    import_tensorflow()
    spec = network_spec(config, data.input_shape, data.n_classes)
    population, batch, _ = DEFAULTS[config.strategy]
    population = config.population or population
    batch = min(config.batch or batch, len(data.y_train))
    deapnn.seed(config.seed)
    evaluator = _evaluator(spec, data, batch, config.seed)
    tb, strategy, annealing = _toolbox(config, spec, evaluator, population)
    n_weights = int(tb.layout.size)
    algorithm = "simple" if strategy is None else "generate_update"
    checkpoint = folder.file("checkpoint.pkl")
    resuming = checkpoint.exists()
    side = (folder.read_json(STATE_FILE) if resuming else None) or {}
    curve: list[dict] = list(side.get("curve", []))
    hof = hall_of_fame(1)
    stats = deapnn.fitness_stats()
    pop = tb.population(n=population) if algorithm == "simple" and not resuming else None
    # one-off TensorFlow tracing, outside the budget (the minibatch step does not move)
    evaluator.evaluate_population(np.zeros((min(population, 8), evaluator.size), np.float32))

    def evolve(ngen: int) -> Any:
        nonlocal pop
        pop, lb = deapnn.evolve(pop if algorithm == "simple" else None, tb, ngen,
                                algorithm=algorithm, cxpb=config.cxpb, mutpb=config.mutpb,
                                stats=stats, halloffame=hof, checkpoint=checkpoint, extend=True)
        return lb

    # GA: evaluate generation 0, or restore the checkpoint (ngen=0 runs nothing new); ES/SNES:
    # restore the strategy, or nothing to do before the first generation
    logbook = evolve(0) if algorithm == "simple" or resuming else None
    generation = _generations(logbook, algorithm) if logbook is not None else 0
    spent = float(logbook[-1]["elapsed"]) if logbook else 0.0  # evolve's time, summed over resumes
    # generations checkpointed after the side file was last written add evolve's time for them
    clock = _Clock(float(side.get("elapsed", 0.0)) + max(0.0, spent - float(side.get("evolve_elapsed", 0.0))),
                   float(side.get("paused", 0.0)))

    def current_model() -> np.ndarray:
        if strategy is not None:
            return np.asarray(strategy.centroid, dtype=np.float32)
        top = sorted(pop, key=lambda ind: ind.fitness.wvalues[0] if ind.fitness.valid else -np.inf,
                     reverse=True)[:5]
        _, acc, _ = evaluator.scores(np.stack(top), data.x_val, data.y_val)
        return np.asarray(top[int(np.argmax(acc))])

    def evaluations() -> int:
        return int(sum(logbook.select("nevals"))) if logbook else 0

    def measure() -> tuple[np.ndarray, float]:
        seconds = clock.elapsed()  # optimisation time, before this measurement's own
        best = current_model()
        _, val_acc, _ = evaluator.scores(best[None], data.x_val, data.y_val)
        _, test_acc, _ = evaluator.scores(best[None], data.x_test, data.y_test)
        curve.append({"seconds": seconds, "generation": generation,
                      "evaluations": evaluations(), "val_accuracy": float(val_acc[0]),
                      "test_accuracy": float(test_acc[0])})
        return best, float(val_acc[0])

    def save() -> None:
        if logbook:
            write_logbook(folder.path, logbook)
        folder.write_json("curve.json", curve)
        # the side state last: once it names a generation, the files above have reached it too
        folder.write_json(STATE_FILE, {
            "generation": generation, "elapsed": clock.elapsed(), "paused": clock.paused,
            "evolve_elapsed": float(logbook[-1]["elapsed"]) if logbook else 0.0, "curve": curve})

    def done() -> bool:
        return ((config.budget is not None and clock.elapsed() >= config.budget)
                or (config.ngen is not None and generation >= config.ngen))

    total = config.budget if config.budget is not None else config.ngen
    bar = Progress(label, total, "s" if config.budget is not None else "gen", quiet)
    chunk = 1
    try:
        if not curve:
            clock.pause(measure)
            clock.pause(save)
        last_measure = clock.elapsed()
        while not done():
            left = config.ngen - generation if config.ngen is not None else chunk
            n = max(1, min(chunk, left))
            t0 = time.perf_counter()
            if annealing is not None and annealing.ngen is None:
                annealing.progress = clock.elapsed() / config.budget
            before, logbook = generation, evolve(generation + n)
            generation = _generations(logbook, algorithm)
            if generation <= before:  # evolve ran nothing (cannot happen without stopping rules)
                break
            # about one second per chunk, and never more than a twentieth of the budget
            per_gen = (time.perf_counter() - t0) / (generation - before)
            target = min(1.0, config.budget / 20) if config.budget else 1.0
            chunk = max(1, min(1000, int(target / max(per_gen, 1e-6))))
            if config.budget is not None:  # never plan past the end of the budget
                chunk = max(1, min(chunk, math.ceil((config.budget - clock.elapsed())
                                                    / max(per_gen, 1e-6))))
            if clock.elapsed() - last_measure >= config.eval_every or done():
                clock.pause(measure)
                last_measure = clock.elapsed()
            clock.pause(save)
            shown = max(c["val_accuracy"] for c in curve) if curve else None  # best so far
            bar.update(clock.elapsed() if config.budget is not None else generation, shown,
                       gen=generation)
    finally:
        bar.close()
    wall = clock.elapsed()
    if curve[-1]["generation"] != generation:
        clock.pause(measure)
        clock.pause(save)
    best = current_model()
    np.save(folder.file("best.npy"), best)
    _save_model(spec, best, folder.file("best.keras"))
    failures = int(sum(r.get("failed", 0) or 0 for r in logbook)) if logbook else 0
    test_accuracy = curve[-1]["test_accuracy"]
    say(f"{label}: {generation} generations, {evaluations()} evaluations, {failures} failures, "
        f"{n_weights} weights, test accuracy {test_accuracy:.4f}, {format_seconds(wall)}")
    result = {
        "kind": "weights",
        "strategy": config.strategy,
        "network": _describe(spec),
        "weights": n_weights,
        "population": population,
        "minibatch": batch,
        "generations": generation,
        "evaluations": evaluations(),
        "failures": failures,
        "wall_seconds": wall,
        "measure_seconds": clock.paused,
        "val_accuracy": curve[-1]["val_accuracy"],
        "test_accuracy": test_accuracy,
        "curve": curve,
        "best": {"weights": "best.npy", "model": "best.keras"},
        "config": config_dict(config),
    }
    folder.write_json("result.json", result)
    return to_jsonable(result)


def _save_model(spec: Any, vector: np.ndarray, path: Any) -> None:
    """The best weights as a Keras model file (``.keras``)."""
    from deapnn.weights import NetworkSpec, WeightCodec

    if isinstance(spec, NetworkSpec):
        model = spec.build_keras()
    else:
        model = spec
    WeightCodec(model).decode(np.asarray(vector, dtype=np.float32))
    model.save(path)

