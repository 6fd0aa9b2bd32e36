"""Fitness of a hyperparameter genome: train its Keras network, score it on validation data.

(:meth:`KerasEvaluator.train_budget` trains to a budget in epochs and resumes a saved lower
budget: the multi-fidelity rungs of :mod:`deapnn.core.fidelity`.)

:class:`KerasEvaluator` is a module-level, picklable callable ``genome -> fitness``: it builds
the network a genome describes, trains it for ``max_epochs`` under a per-model
``max_training_time``, scores it on the validation split and clears the Keras session.

What can go wrong is sorted as :mod:`deapnn.core.failures` says:

* a genome's failure -- its loss turns NaN or infinite (Keras's ``TerminateOnNaN`` stops the
  training), its scores are not finite, its builder rejects it (a ``ValueError``), training
  raises or runs out of memory -- is a :class:`~deapnn.core.failures.Failure` fitness carrying
  the reason, and the run goes on;
* a setup error -- a builder that cannot be called as ``build(genome, input_shape, n_classes)``
  (checked when the evaluator is made), an unknown metric or loss, or a dataset that cannot be
  loaded (checked on the first evaluation, before training) -- raises
  :class:`~deapnn.core.failures.SetupError` at once.

This is an edge module: Keras and TensorFlow are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from deapnn.core import seeding
from deapnn.core.failures import Failure, SetupError, worst_values
from deapnn.data import Dataset, DatasetLike, get_dataset
from deapnn.keras.models import LR_SCHEDULES, _keras, build_mlp, genome_values, make_optimizer


__all__ = ["KerasEvaluator", "TrainingRecord", "budget_steps", "check_builder", "genome_seed"]

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


def budget_steps(budget: float, n_train: int, batch_size: int) -> int:
    """Optimizer steps of a budget of ``budget`` epochs: ``round(budget * n_train / batch_size)``,
    at least 1 (an epoch is ``n_train`` examples; batches run on across epoch boundaries)."""
    return max(1, int(round(float(budget) * n_train / batch_size)))


def _batch_indices(seed: int, n: int, start: int, stop: int, batch_size: int) -> Any:
    """Example indices of global training steps ``start .. stop - 1``.

    The examples are an endless stream of permutations of ``range(n)``, the ``e``-th drawn from
    ``numpy.random.default_rng([seed, e])``; step ``s`` takes stream positions
    ``s * batch_size .. (s + 1) * batch_size - 1``. So training steps ``0..a`` and then ``a..b``
    sees exactly the batches of training ``0..b`` at once.
    """
    import numpy as np

    first, last = start * batch_size, stop * batch_size
    parts = []
    for epoch in range(first // n, (last - 1) // n + 1):
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        lo, hi = max(first - epoch * n, 0), min(last - epoch * n, n)
        parts.append(perm[lo:hi])
    return np.concatenate(parts)


def save_training_state(path: Any, model: Any, steps: int) -> None:
    """Write a model's weights, its optimizer's variables and ``steps`` to one ``.npz`` file
    (atomically: a temporary file renamed), for :meth:`KerasEvaluator.train_budget` to resume."""
    import os

    import numpy as np

    path = str(path)
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"o{i}": v.numpy() for i, v in enumerate(model.optimizer.variables)})
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, steps=np.asarray(steps), **arrays)
    os.replace(tmp, path)


def load_training_state(path: Any, model: Any) -> int:
    """Restore what :func:`save_training_state` wrote into a freshly built, compiled ``model``
    (same builder, same genome); returns the steps the saved model had been trained."""
    import numpy as np

    with np.load(str(path)) as saved:
        weights = [saved[f"w{i}"] for i in range(sum(1 for k in saved.files if k[0] == "w"))]
        optimizer = [saved[f"o{i}"] for i in range(sum(1 for k in saved.files if k[0] == "o"))]
        steps = int(saved["steps"])
    model.set_weights(weights)
    model.optimizer.build(model.trainable_variables)
    if len(model.optimizer.variables) != len(optimizer):
        raise ValueError(f"{path}: {len(optimizer)} optimizer variables saved, the model's "
                         f"optimizer has {len(model.optimizer.variables)}")
    for variable, value in zip(model.optimizer.variables, optimizer):
        variable.assign(value)
    return steps


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


#: Metric names ``model.compile`` understands without ``keras.metrics.get``.
_COMPILE_METRICS = ("accuracy", "acc", "crossentropy", "ce")


def check_builder(build: Any) -> None:
    """Raise :class:`SetupError` unless ``build(genome, input_shape, n_classes)`` can be called.

    Only the signature is checked (``inspect.signature(build).bind``); a builder whose signature
    cannot be read (some builtins) passes. A builder that accepts the call but rejects one genome
    (a ``ValueError``) is that genome's failure, not a setup error.
    """
    if not callable(build):
        raise TypeError(f"build must be callable, got {build!r}")
    try:
        signature = inspect.signature(build)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None, (1,), 2)
    except TypeError as exc:
        name = getattr(build, "__qualname__", None) or repr(build)
        raise SetupError(f"the builder {name}{signature} cannot be called as "
                         f"build(genome, input_shape, n_classes): {exc}") from exc


def check_metric(metric: str, loss: Any) -> None:
    """Raise :class:`SetupError` if Keras does not know ``metric`` or the ``loss`` name.

    Imports Keras: it runs on the first evaluation (in the worker), not when the evaluator is made.
    """
    keras = _keras()
    if metric not in ("loss",) + _COMPILE_METRICS:
        try:
            keras.metrics.get(metric)
        except ValueError as exc:
            raise SetupError(f"unknown metric {metric!r}: {exc}") from exc
    if isinstance(loss, str):
        try:
            keras.losses.get(loss)
        except ValueError as exc:
            raise SetupError(f"unknown loss {loss!r}: {exc}") from exc


_GUARD: type | None = None


def _guard_class() -> type:
    """The Keras callback that stops training at a deadline and remembers the last batch loss."""
    global _GUARD
    if _GUARD is None:
        keras = _keras()

        class TrainingGuard(keras.callbacks.Callback):
            """Stops ``fit`` after ``max_seconds``; records where training is (for reasons)."""

            def __init__(self, max_seconds: float | None) -> None:
                super().__init__()
                self.max_seconds = max_seconds
                self.timed_out = False
                self.epoch = self.batch = 0
                self.loss: float | None = None  # the last batch's training loss
                self.start = time.monotonic()

            def on_train_begin(self, logs=None):
                self.start = time.monotonic()

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                self.batch = batch
                self.loss = float((logs or {}).get("loss", math.nan))
                if (self.max_seconds is not None
                        and time.monotonic() - self.start > self.max_seconds):
                    self.timed_out = True
                    self.model.stop_training = True

            def nan_reason(self) -> str:
                return (f"non-finite training loss ({self.loss}) at epoch {self.epoch + 1}, "
                        f"batch {self.batch + 1} (TerminateOnNaN)")

        _GUARD = TrainingGuard
    return _GUARD


def training_callbacks(max_seconds: float | None) -> list[Any]:
    """``[guard, keras.callbacks.TerminateOnNaN(raise_error=True)]``, in that order.

    The guard (first) stops training at the deadline and records each batch's loss; Keras's
    ``TerminateOnNaN`` then raises on a NaN or infinite loss, and the guard says where.
    """
    return [_guard_class()(max_seconds), _keras().callbacks.TerminateOnNaN(raise_error=True)]


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
        steps: optimizer steps the model has been trained in all (with a budget
            (:meth:`KerasEvaluator.train_budget`), including the steps of the run it resumed);
            None when not counted.
        start_steps: optimizer steps the model had already been trained when this evaluation
            resumed it (0 when trained from scratch).
    """

    fitness: tuple[float, ...]
    score: float | None
    params: int | None
    epochs: int
    seconds: float
    timed_out: bool
    reason: str | None = None
    history: dict[str, list[float]] = field(default_factory=dict, repr=False)
    steps: int | None = None
    start_steps: int = 0

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

    Raises:
        SetupError: If ``build`` cannot be called as ``build(genome, input_shape, n_classes)``;
            on the first evaluation, if Keras knows no metric ``metric`` or loss ``loss``.

    Multi-fidelity: :meth:`train_budget` trains a genome to a budget in epochs (fractions
    allowed), resuming a lower budget's saved weights and optimizer state, for
    :class:`deapnn.core.fidelity.MultiFidelity`; calling the evaluator trains ``max_epochs``.

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
        check_builder(build)
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

    def fingerprint(self) -> str:
        """A hex digest of everything that decides a fitness, and of nothing else.

        Covers the data and its split (:func:`deapnn.data.dataset_fingerprint`), the builder
        (:func:`deapnn.core.fingerprint.fingerprint`), epochs, time limit, metric, loss,
        objectives and their direction, failure values, default batch size, seed, learning-rate
        schedule, ``fail_on_timeout`` and ``steps_per_execution`` (how often the time limit is
        checked); not ``verbose``, nor where or on how many workers it runs. Loads the dataset
        if only its loader was given.
        """
        from deapnn.core.fingerprint import fingerprint as fingerprint_of
        from deapnn.data import dataset_fingerprint

        settings = {
            "evaluator": f"{type(self).__module__}.{type(self).__qualname__}",
            "data": dataset_fingerprint(self.data), "build": fingerprint_of(self.build),
            "max_epochs": self.max_epochs, "max_training_time": self.max_training_time,
            "metric": self.metric, "loss": fingerprint_of(self.loss),
            "objectives": self.objectives, "maximize": self.maximize,
            "failure": self.failure, "batch_size": self.batch_size,
            "seed": self.seed, "fail_on_timeout": self.fail_on_timeout,
            "steps_per_execution": self.steps_per_execution, "lr_schedule": self.lr_schedule,
        }
        return fingerprint_of(settings)

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

    #: :meth:`train_budget` trains for any positive number of epochs, fractions included.
    fractional_budgets = True

    def compile(self, model: Any, genome: Any, steps: int | None = None) -> Any:
        """Compiles an uncompiled ``model`` with the genome's optimizer, ``loss`` and ``metric``;
        a decaying learning rate decays over ``steps`` (default: ``max_epochs`` epochs)."""
        if not getattr(model, "compiled", False):
            metrics = [] if self.metric == "loss" else [self.metric]
            if steps is None:
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

    def _setup(self) -> tuple[Any, Any]:
        """Keras and the dataset, or a SetupError (unknown metric or loss, a dataset that cannot
        be loaded): no genome could be evaluated."""
        keras = _keras()
        check_metric(self.metric, self.loss)
        try:
            return keras, self.dataset
        except Exception as exc:  # no genome could be evaluated: the setup is wrong
            raise SetupError(f"the dataset could not be loaded: {type(exc).__name__}: "
                             f"{exc}") from exc

    def _validate(self, model: Any, data: Any, batch_size: int, guard: Any) -> tuple[float | None, str | None]:
        """``(score, failure reason)`` of a trained model on the validation split: no score after
        a time-out (when ``fail_on_timeout``), a reason for a non-finite score or loss; a
        SetupError when the metric is not among the model's results."""
        if guard.timed_out and self.fail_on_timeout:
            return None, f"time limit of {self.max_training_time}s reached"
        results = model.evaluate(data.x_val, data.y_val, batch_size=max(batch_size, 256),
                                 verbose=0, return_dict=True)
        if self.metric not in results:
            raise SetupError(f"metric {self.metric!r} is not in the model's "
                             f"results {sorted(results)}")
        score = float(results[self.metric])
        if not math.isfinite(score) or not math.isfinite(float(results["loss"])):
            return score, (f"non-finite validation {self.metric} ({score}) / loss "
                           f"({float(results['loss'])}): the model diverged")
        return score, None

    def evaluate(self, genome: Any) -> TrainingRecord:
        """Trains and scores ``genome``'s network; never raises for a failing model.

        Returns:
            A :class:`TrainingRecord`; its ``fitness`` is what :meth:`__call__` returns.

        Raises:
            SetupError: For an unknown metric or loss, a dataset that cannot be loaded, or
                when the model's results lack the metric: the setup is wrong, whatever the
                genome.
        """
        keras, data = self._setup()
        start = time.monotonic()
        params: int | None = None
        score: float | None = None
        history: dict[str, list[float]] = {}
        callbacks = training_callbacks(self.max_training_time)
        guard = callbacks[0]
        reason: str | None = None
        try:
            with _seeded(genome_seed(genome, self.seed)):
                model = self.compile(self.build(genome, data.input_shape, data.n_classes),
                                     genome)
                params = int(model.count_params())
                batch_size = self._batch_size(genome)
                fit = model.fit(data.x_train, data.y_train, batch_size=batch_size,
                                epochs=self.max_epochs, callbacks=callbacks, shuffle=True,
                                verbose=self.verbose)
                history = {k: [float(x) for x in v] for k, v in fit.history.items()}
                score, reason = self._validate(model, data, batch_size, guard)
        except SetupError:
            raise
        except Exception as error:  # noqa: BLE001 - recorded as a Failure, never hidden
            nan_loss = guard.loss is not None and not math.isfinite(guard.loss)
            reason = guard.nan_reason() if nan_loss else _reason(error)
        finally:
            keras.backend.clear_session()
        started = guard.loss is not None  # a batch was trained
        epochs = len(history.get("loss", ())) or (guard.epoch + 1 if started else 0)
        seconds = time.monotonic() - start
        if reason is not None:
            fitness: tuple[float, ...] = Failure(self.failure, reason)
        else:
            fitness = tuple(score if o == "score" else float(params) for o in self.objectives)
        return TrainingRecord(fitness, score, params, epochs, seconds, guard.timed_out, reason,
                              history)



    def train_budget(self, genome: Any, budget: float, *, total: float | None = None,
                     resume: Any = None, save: Any = None) -> TrainingRecord:
        """Trains ``genome``'s network up to ``budget`` epochs in all (fractions allowed) and
        scores it; the multi-fidelity rungs of :mod:`deapnn.core.fidelity` call this.

        Training is measured in optimizer steps (:func:`budget_steps`) over an endless stream
        of seeded permutations of the training set, so resuming a model saved after ``a``
        steps and training on to ``b`` sees the same batches as training ``b`` steps at once.

        Args:
            genome: the genome.
            budget: epochs of training the model has in all after this call (> 0).
            total: the largest budget of the run (default ``budget``): a decaying
                ``lr_schedule`` decays over it, so a resumed model continues on one schedule.
            resume: a file written by an earlier call's ``save`` (a lower budget) to continue
                from: weights, optimizer state and steps. A missing file trains from scratch.
            save: where to write the trained model's state (:func:`save_training_state`).

        Returns:
            A :class:`TrainingRecord` with ``steps`` (in all) and ``start_steps``; a failure
            is a ``Failure`` fitness as in :meth:`evaluate`. ``max_training_time`` limits the
            steps of this call.

        Raises:
            ValueError: for a budget that is not a positive number. (A resumed model already
                trained as many steps as ``budget`` asks is scored without training.)
            SetupError: as :meth:`evaluate`.

        Randomness: as :meth:`evaluate`; batch order from ``numpy.random.default_rng`` seeded
        with the genome's seed and the epoch number.
        """
        import os

        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0 \
                or not math.isfinite(budget):
            raise ValueError(f"budget must be a positive number of epochs, got {budget!r}")
        total = budget if total is None else total
        keras, data = self._setup()
        start = time.monotonic()
        params: int | None = None
        score: float | None = None
        history: dict[str, list[float]] = {}
        callbacks = training_callbacks(self.max_training_time)
        guard = callbacks[0]
        reason: str | None = None
        batch_size = self._batch_size(genome)
        n = len(data.x_train)
        stop = budget_steps(budget, n, batch_size)
        first = trained = 0
        seed = genome_seed(genome, self.seed)
        try:
            with _seeded(seed):
                model = self.compile(self.build(genome, data.input_shape, data.n_classes),
                                     genome, steps=budget_steps(total, n, batch_size))
                params = int(model.count_params())
                if resume is not None and os.path.exists(resume):
                    first = load_training_state(resume, model)
                if stop > first:  # (rounding can make two close budgets the same steps)
                    index = _batch_indices(seed, n, first, stop, batch_size)
                    fit = model.fit(data.x_train[index], data.y_train[index],
                                    batch_size=batch_size, epochs=1, callbacks=callbacks,
                                    shuffle=False, verbose=self.verbose)
                    history = {k: [float(x) for x in v] for k, v in fit.history.items()}
                trained = int(model.optimizer.iterations)
                score, reason = self._validate(model, data, batch_size, guard)
                if reason is None and save is not None:
                    save_training_state(save, model, trained)
        except SetupError:
            raise
        except Exception as error:  # noqa: BLE001 - recorded as a Failure, never hidden
            nan_loss = guard.loss is not None and not math.isfinite(guard.loss)
            reason = guard.nan_reason() if nan_loss else _reason(error)
        finally:
            keras.backend.clear_session()
        seconds = time.monotonic() - start
        if reason is not None:
            fitness: tuple[float, ...] = Failure(self.failure, reason)
        else:
            fitness = tuple(score if o == "score" else float(params) for o in self.objectives)
        return TrainingRecord(fitness, score, params, 1 if guard.loss is not None else 0,
                              seconds, guard.timed_out, reason, history, steps=trained,
                              start_steps=first)
