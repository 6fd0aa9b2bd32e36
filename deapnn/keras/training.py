"""Fitness of a hyperparameter genome: train its Keras network, score it on validation data.

:class:`KerasEvaluator` is a module-level, picklable callable ``genome -> fitness``: it builds
the network a genome describes, trains it for ``max_epochs`` under a per-model
``max_training_time``, scores it on the validation split and clears the Keras session. A model
whose loss turns NaN, whose scores are not finite or whose training raises gets a
:class:`~deapnn.core.failures.Failure` fitness carrying the reason, and the run goes on.

:func:`train_best` retrains the fittest genome for real (more epochs, early stopping, best
weights restored), reports its test score and saves the model (``.keras``) and genome (JSON).

This is an edge module: Keras and TensorFlow are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deapnn.core import seeding
from deapnn.data import Dataset, DatasetLike, get_dataset
from deapnn.core.failures import Failure, worst_values
from deapnn.keras.models import LR_SCHEDULES, _keras, build_mlp, genome_values, make_optimizer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["BestResult", "KerasEvaluator", "TrainingRecord", "genome_seed", "train_best"]

BuildFn = Callable[[Any, Sequence[int], int], Any]
_OBJECTIVES = ("score", "params")
_MINIMISED = ("loss", "error", "mse", "mae", "mape", "msle", "hinge", "crossentropy")


def genome_seed(genome: Any, base: int = 0) -> int:
    """A reproducible seed for one genome: a hash of its canonical key, offset by ``base``.

    Uses ``genome.key()`` when the genome has one (so equivalent genomes train identically),
    else its sorted values. The hash is SHA-256, stable across processes and Python runs.
    """
    key = genome.key() if callable(getattr(genome, "key", None)) else \
        tuple(sorted(genome_values(genome).items()))
    digest = hashlib.sha256(repr(key).encode()).digest()
    return (int.from_bytes(digest[:4], "big") + int(base)) % (2**31 - 1)


def _reason(error: BaseException, limit: int = 300) -> str:
    """``"ErrorType: message"``, without the graph tracebacks TensorFlow puts in its messages."""
    lines = [line.strip() for line in str(error).strip().splitlines()]
    kept = [line for line in lines if line and not line.startswith(
        ("File ", "Detected at node", "[[", "Graph execution error"))]
    text = " ".join(kept) or (lines[0] if lines else "")
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return f"{type(error).__name__}: {text}"


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seeds Keras/TF for one model; Python's and numpy's global random states are restored
    afterwards, so training never disturbs the genetic algorithm's random stream."""
    state = seeding.get_state()
    try:
        _keras().utils.set_random_seed(seed)
        yield
    finally:
        seeding.set_state(state)


_GUARD: type | None = None


def _guard_class() -> type:
    """The Keras callback that stops training at a deadline or on a non-finite loss."""
    global _GUARD
    if _GUARD is None:
        keras = _keras()

        class TrainingGuard(keras.callbacks.Callback):
            """Stops ``fit`` after ``max_seconds`` or at the first non-finite batch loss."""

            def __init__(self, max_seconds: float | None) -> None:
                super().__init__()
                self.max_seconds = max_seconds
                self.timed_out = False
                self.bad_loss: str | None = None
                self.epoch = 0
                self.start = time.monotonic()

            def on_train_begin(self, logs=None):
                self.start = time.monotonic()

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                loss = (logs or {}).get("loss")
                if loss is not None and not math.isfinite(float(loss)):
                    self.bad_loss = (f"non-finite training loss ({float(loss)}) at epoch "
                                     f"{self.epoch + 1}, batch {batch + 1}")
                    self.model.stop_training = True
                elif (self.max_seconds is not None
                      and time.monotonic() - self.start > self.max_seconds):
                    self.timed_out = True
                    self.model.stop_training = True

        _GUARD = TrainingGuard
    return _GUARD


@dataclass(frozen=True)
class TrainingRecord:
    """What one evaluation did.

    Attributes:
        fitness: the fitness tuple returned to DEAP (a ``Failure`` when the model failed).
        score: validation value of the evaluator's metric (None if training failed first).
        params: number of weights of the model (None if it could not be built).
        epochs: epochs started (the last may be partial when the time limit stopped it).
        seconds: wall time of build + training + scoring.
        timed_out: whether ``max_training_time`` stopped training.
        reason: why the model failed, else None.
        history: Keras's per-epoch training logs.
    """

    fitness: tuple[float, ...]
    score: float | None
    params: int | None
    epochs: int
    seconds: float
    timed_out: bool
    reason: str | None = None
    history: dict[str, list[float]] = field(default_factory=dict, repr=False)

    @property
    def failed(self) -> bool:
        return self.reason is not None


class KerasEvaluator:
    """Picklable fitness function: train the genome's network, score it on validation data.

    Args:
        data: a :class:`~deapnn.data.Dataset`, or (cheaper to pickle for worker processes) a
            zero-argument loader such as ``functools.partial(load_mnist, validation=5000)``,
            loaded once per process by :func:`deapnn.data.get_dataset`.
        build: ``build(genome, input_shape, n_classes) -> keras.Model``; default
            :func:`~deapnn.keras.models.build_mlp`. Uncompiled models are compiled with the genome's
            optimizer and learning rate (:func:`~deapnn.keras.models.make_optimizer`), ``loss`` and
            ``metric``; compiled ones are kept as they are.
        max_epochs: training epochs per model.
        max_training_time: seconds after which a model's training stops (checked after every
            batch); the model is then scored as it is, unless ``fail_on_timeout``.
        metric: the score: ``"accuracy"``, ``"loss"`` or any Keras metric name.
        objectives: ``("score",)``, or ``("score", "params")`` to also minimise the parameter
            count (NSGA-II, ``creator.GenomeMulti``).
        maximize: whether a higher score is better; default False for losses and errors, True
            otherwise. :attr:`weights` gives the matching DEAP fitness weights.
        failure: fitness of a failed model; default the worst possible values
            (:func:`~deapnn.core.failures.worst_values`: -inf when maximised, +inf when minimised),
            which :func:`deapnn.fitness_stats` leaves out of its averages and counts as failed.
        batch_size: used when the genome has no ``batch_size`` gene.
        loss: Keras loss for compiling (labels are class indices).
        seed: base seed; each model is seeded with :func:`genome_seed` ``(genome, seed)``, so an
            evaluation is reproducible and independent of evaluation order.
        fail_on_timeout: treat a model stopped by the time limit as failed.
        steps_per_execution: training batches per compiled call (Keras's ``compile`` option);
            more is faster for small batches on CPU; the time limit and NaN checks then run
            every that many batches.
        lr_schedule: ``"constant"`` (default) trains at the genome's learning rate;
            ``"linear"`` or ``"cosine"`` decay it to 0 over the whole budget of ``max_epochs``
            epochs (see :func:`~deapnn.keras.models.make_optimizer`), so that a one-epoch fitness
            scores how well a genome trains rather than how noisy its last steps were.
        verbose: Keras ``fit`` verbosity.

    Randomness: Keras's initialisers, dropout and shuffling, seeded per genome by
    ``keras.utils.set_random_seed``; Python's and numpy's global states are restored afterwards,
    so evaluating never disturbs the genetic algorithm's random stream.
    """

    def __init__(self, data: DatasetLike, build: BuildFn = build_mlp, *, max_epochs: int = 1,
                 max_training_time: float | None = None, metric: str = "accuracy",
                 objectives: Sequence[str] = ("score",), maximize: bool | None = None,
                 failure: Sequence[float] | None = None, batch_size: int = 32,
                 loss: str = "sparse_categorical_crossentropy", seed: int = 0,
                 fail_on_timeout: bool = False, steps_per_execution: int = 1,
                 lr_schedule: str = "constant", verbose: int = 0) -> None:
        if not isinstance(data, Dataset) and not callable(data):
            raise TypeError(f"data must be a Dataset or a callable returning one, got {data!r}")
        if not callable(build):
            raise TypeError(f"build must be callable, got {build!r}")
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
            raise ValueError(f"max_epochs must be a positive int, got {max_epochs!r}")
        if max_training_time is not None and not max_training_time > 0:
            raise ValueError(f"max_training_time must be positive or None, got {max_training_time!r}")
        if not isinstance(metric, str) or not metric:
            raise TypeError(f"metric must be a Keras metric name, got {metric!r}")
        objectives = tuple(objectives)
        if not objectives or len(set(objectives)) != len(objectives) or any(
                o not in _OBJECTIVES for o in objectives):
            raise ValueError(f"objectives must be distinct names from {_OBJECTIVES}, "
                             f"got {objectives!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.data = data
        self.build = build
        self.max_epochs = max_epochs
        self.max_training_time = max_training_time
        self.metric = metric
        self.objectives = objectives
        self.maximize = (not any(m in metric.lower() for m in _MINIMISED)
                         if maximize is None else bool(maximize))
        if failure is None:
            failure = worst_values(self.weights)
        failure = tuple(float(v) for v in failure)
        if len(failure) != len(objectives):
            raise ValueError(f"failure needs one value per objective {objectives!r}, "
                             f"got {failure!r}")
        self.failure = failure
        self.batch_size = batch_size
        self.loss = loss
        self.seed = int(seed)
        self.fail_on_timeout = bool(fail_on_timeout)
        if isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, int) \
                or steps_per_execution < 1:
            raise ValueError(f"steps_per_execution must be a positive int, "
                             f"got {steps_per_execution!r}")
        self.steps_per_execution = steps_per_execution
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
        self.lr_schedule = lr_schedule
        self.verbose = verbose

    @property
    def weights(self) -> tuple[float, ...]:
        """DEAP fitness weights matching :attr:`objectives` (``params`` is minimised)."""
        return tuple((1.0 if self.maximize else -1.0) if o == "score" else -1.0
                     for o in self.objectives)

    @property
    def dataset(self) -> Dataset:
        """The dataset, loaded (once per process) from the loader if one was given."""
        return get_dataset(self.data)

    def __repr__(self) -> str:
        build = getattr(self.build, "__name__", repr(self.build))
        return (f"KerasEvaluator(data={self.data!r}, build={build}, max_epochs={self.max_epochs}, "
                f"max_training_time={self.max_training_time}, metric={self.metric!r}, "
                f"objectives={self.objectives}, lr_schedule={self.lr_schedule!r})")

    def __call__(self, genome: Any) -> tuple[float, ...]:
        """The fitness of ``genome``: a tuple, or a ``Failure`` with the reason."""
        return self.evaluate(genome).fitness

    def compile(self, model: Any, genome: Any) -> Any:
        """Compiles an uncompiled ``model`` with the genome's optimizer, ``loss`` and ``metric``."""
        if not getattr(model, "compiled", False):
            metrics = [] if self.metric == "loss" else [self.metric]
            steps = self.max_epochs * math.ceil(len(self.dataset.x_train)
                                                / self._batch_size(genome))
            model.compile(optimizer=make_optimizer(genome, schedule=self.lr_schedule,
                                                   steps=steps),
                          loss=self.loss, metrics=metrics,
                          steps_per_execution=self.steps_per_execution)
        return model

    def _batch_size(self, genome: Any) -> int:
        values = genome_values(genome)
        return int(values.get("batch_size") or self.batch_size)

    def evaluate(self, genome: Any) -> TrainingRecord:
        """Trains and scores ``genome``'s network; never raises for a failing model.

        Returns:
            A :class:`TrainingRecord`; its ``fitness`` is what :meth:`__call__` returns.
        """
        keras = _keras()
        data = self.dataset
        start = time.monotonic()
        params: int | None = None
        score: float | None = None
        history: dict[str, list[float]] = {}
        guard = _guard_class()(self.max_training_time)
        reason: str | None = None
        try:
            with _seeded(genome_seed(genome, self.seed)):
                model = self.compile(self.build(genome, data.input_shape, data.n_classes),
                                     genome)
                params = int(model.count_params())
                batch_size = self._batch_size(genome)
                fit = model.fit(data.x_train, data.y_train, batch_size=batch_size,
                                epochs=self.max_epochs, callbacks=[guard], shuffle=True,
                                verbose=self.verbose)
                history = {k: [float(x) for x in v] for k, v in fit.history.items()}
                if guard.bad_loss is not None:
                    reason = guard.bad_loss
                elif guard.timed_out and self.fail_on_timeout:
                    reason = f"time limit of {self.max_training_time}s reached"
                else:
                    results = model.evaluate(data.x_val, data.y_val,
                                             batch_size=max(batch_size, 256), verbose=0,
                                             return_dict=True)
                    if self.metric not in results:
                        raise KeyError(f"metric {self.metric!r} not in the model's results "
                                       f"{sorted(results)}")
                    score = float(results[self.metric])
                    if not math.isfinite(score) or not math.isfinite(float(results["loss"])):
                        reason = (f"non-finite validation {self.metric} ({score}) / loss "
                                  f"({float(results['loss'])}): the model diverged")
        except Exception as error:  # noqa: BLE001 - recorded as a Failure, never hidden
            reason = _reason(error)
        finally:
            keras.backend.clear_session()
        epochs = len(history.get("loss", ())) or guard.epoch + (reason is None)
        seconds = time.monotonic() - start
        if reason is not None:
            fitness: tuple[float, ...] = Failure(self.failure, reason)
        else:
            fitness = tuple(score if o == "score" else float(params) for o in self.objectives)
        return TrainingRecord(fitness, score, params, epochs, seconds, guard.timed_out, reason,
                              history)


@dataclass(frozen=True)
class BestResult:
    """Outcome of :func:`train_best`.

    Attributes:
        genome: the genome's values.
        test_loss, test_accuracy: scores on the test split.
        val_loss, val_accuracy: scores of the restored (best) weights on the validation split.
        epochs: epochs trained; best_epoch: the epoch whose weights were kept (1-based).
        seconds: training wall time.
        model_path, genome_path: where the ``.keras`` model and the JSON genome were saved.
        test_metrics: every test metric Keras reported.
        model: the trained Keras model.
    """

    genome: dict[str, Any]
    test_loss: float
    test_accuracy: float
    val_loss: float
    val_accuracy: float
    epochs: int
    best_epoch: int
    seconds: float
    model_path: Path | None = None
    genome_path: Path | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)
    model: Any = field(default=None, repr=False, compare=False)


def _paths(path: str | os.PathLike | None) -> tuple[Path | None, Path | None]:
    if path is None:
        return None, None
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".keras", ".json") else path
    return stem.with_name(stem.name + ".keras"), stem.with_name(stem.name + ".json")


def train_best(genome: Any, evaluator_or_data: KerasEvaluator | DatasetLike, *,
               epochs: int = 50, patience: int = 5, path: str | os.PathLike | None = None,
               build: BuildFn | None = None, monitor: str = "val_loss",
               batch_size: int | None = None, max_training_time: float | None = None,
               seed: int | None = None, lr_patience: int | None = None,
               lr_factor: float = 0.5, verbose: int = 0) -> BestResult:
    """Fully trains the fittest genome, scores it on the test split and saves it.

    Trains for up to ``epochs`` epochs with early stopping on ``monitor`` (validation data,
    ``patience`` epochs) restoring the best weights, then evaluates once on the test split.

    Args:
        genome: the genome (or dict of values) to train.
        evaluator_or_data: a :class:`KerasEvaluator` (its data, builder, loss, metric and seed are
            reused) or a dataset / dataset loader (then ``build`` defaults to
            :func:`~deapnn.keras.models.build_mlp`).
        epochs: maximum training epochs.
        patience: early-stopping patience in epochs.
        path: where to save: ``<path>.keras`` (the model) and ``<path>.json`` (genome and scores);
            a ``.keras`` or ``.json`` suffix on ``path`` is replaced. None saves nothing.
        build: overrides the builder.
        monitor: validation quantity for early stopping (``"val_loss"``, ``"val_accuracy"``).
        batch_size: overrides the genome's ``batch_size`` gene.
        max_training_time: optional limit in seconds for the whole training.
        seed: base seed; default the evaluator's (or 0). Keras is seeded with
            :func:`genome_seed`; Python's and numpy's global random states are restored.
        lr_patience: if set, multiply the learning rate by ``lr_factor`` after that many
            epochs without improvement of ``monitor`` (Keras ``ReduceLROnPlateau``); keep it
            below ``patience`` so the lower rate gets epochs to help before training stops.
        lr_factor: the factor of ``lr_patience``, in (0, 1).
        verbose: Keras ``fit`` verbosity.

    Returns:
        A :class:`BestResult`.

    Raises:
        RuntimeError: if the training loss became NaN.
    """
    keras = _keras()
    if isinstance(evaluator_or_data, KerasEvaluator):
        evaluator = evaluator_or_data
    else:
        evaluator = KerasEvaluator(evaluator_or_data, build or build_mlp)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
        raise ValueError(f"patience must be a non-negative int, got {patience!r}")
    if lr_patience is not None and (isinstance(lr_patience, bool)
                                    or not isinstance(lr_patience, int) or lr_patience < 0):
        raise ValueError(f"lr_patience must be a non-negative int or None, got {lr_patience!r}")
    if isinstance(lr_factor, bool) or not isinstance(lr_factor, (int, float)):
        raise TypeError(f"lr_factor must be a number, got {lr_factor!r}")
    if not 0.0 < lr_factor < 1.0:
        raise ValueError(f"lr_factor must be in (0, 1), got {lr_factor!r}")
    data = evaluator.dataset
    build = build or evaluator.build
    values = genome_values(genome)
    stopper = keras.callbacks.EarlyStopping(monitor=monitor, patience=patience,
                                            restore_best_weights=True)
    callbacks = [stopper, _guard_class()(max_training_time)]
    if lr_patience is not None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=lr_factor,
                                                           patience=lr_patience))
    start = time.monotonic()
    with _seeded(genome_seed(genome, evaluator.seed if seed is None else seed)):
        model = build(genome, data.input_shape, data.n_classes)
        if not getattr(model, "compiled", False):
            metrics = ["accuracy"] + ([evaluator.metric]
                                      if evaluator.metric not in ("accuracy", "loss") else [])
            model.compile(optimizer=make_optimizer(genome), loss=evaluator.loss,
                          metrics=metrics, steps_per_execution=evaluator.steps_per_execution)
        fit = model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                        batch_size=batch_size or evaluator._batch_size(genome), epochs=epochs,
                        callbacks=callbacks, shuffle=True, verbose=verbose)
    seconds = time.monotonic() - start
    if callbacks[1].bad_loss is not None:
        raise RuntimeError(f"train_best: {callbacks[1].bad_loss}")
    history = fit.history
    trained = len(history["loss"])
    best_epoch = int(getattr(stopper, "best_epoch", trained - 1)) + 1
    val = model.evaluate(data.x_val, data.y_val, batch_size=1024, verbose=0, return_dict=True)
    test = model.evaluate(data.x_test, data.y_test, batch_size=1024, verbose=0, return_dict=True)
    test = {k: float(v) for k, v in test.items()}
    model_path, genome_path = _paths(path)
    result = BestResult(
        genome=values, test_loss=test["loss"], test_accuracy=test.get("accuracy", math.nan),
        val_loss=float(val["loss"]), val_accuracy=float(val.get("accuracy", math.nan)),
        epochs=trained, best_epoch=best_epoch, seconds=seconds, model_path=model_path,
        genome_path=genome_path, test_metrics=test, model=model)
    if model_path is not None:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        model.save(model_path)
        space = getattr(genome, "space", None)
        record = {
            "genome": values,
            "space": space.to_dict() if space is not None else None,
            "dataset": data.name,
            "test_loss": result.test_loss, "test_accuracy": result.test_accuracy,
            "val_loss": result.val_loss, "val_accuracy": result.val_accuracy,
            "epochs": trained, "best_epoch": best_epoch, "seconds": seconds,
            "model_path": str(model_path),
        }
        genome_path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return result
