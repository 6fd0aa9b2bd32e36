"""``train_best``: train the fittest genome for real, score it on the test split, save it.

After a search has scored genomes on short budgets, :func:`train_best` retrains the best one with
more epochs, early stopping on the validation split (best weights restored) and the evaluator's
learning-rate schedule, reports its test score and saves the model (``.keras``) and genome (JSON).

This is an edge module: Keras and TensorFlow are imported inside functions only.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deapnn.data import DatasetLike
from deapnn.keras.evaluator import BuildFn, KerasEvaluator, _seeded, check_builder, genome_seed, \
    training_callbacks
from deapnn.keras.models import _keras, build_mlp, genome_values, make_optimizer

__all__ = ["BestResult", "train_best"]


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

    The learning rate follows the evaluator's ``lr_schedule``: ``"linear"``/``"cosine"`` decay
    it to 0 over the ``epochs`` epochs (early stopping may end training before), as in the
    search. Randomness: Keras is seeded with :func:`genome_seed`; Python's and numpy's global
    random states are restored afterwards.

    Returns:
        A :class:`BestResult`.

    Raises:
        RuntimeError: if the training loss became NaN or infinite.
        ValueError: for ``lr_patience`` with a decaying ``lr_schedule`` (the two would fight
            over the learning rate), or an out-of-range number.
        SetupError: if ``build`` cannot be called as ``build(genome, input_shape, n_classes)``.
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
    if lr_patience is not None and evaluator.lr_schedule != "constant":
        raise ValueError(f"lr_patience needs the 'constant' lr_schedule, but the evaluator "
                         f"decays the learning rate ({evaluator.lr_schedule!r})")
    if build is not None:
        check_builder(build)
    data = evaluator.dataset
    build = build or evaluator.build
    values = genome_values(genome)
    batch_size = batch_size or evaluator._batch_size(genome)
    stopper = keras.callbacks.EarlyStopping(monitor=monitor, patience=patience,
                                            restore_best_weights=True)
    guard, terminate_on_nan = training_callbacks(max_training_time)
    callbacks = [stopper, guard, terminate_on_nan]
    if lr_patience is not None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=lr_factor,
                                                           patience=lr_patience))
    start = time.monotonic()
    with _seeded(genome_seed(genome, evaluator.seed if seed is None else seed)):
        model = build(genome, data.input_shape, data.n_classes)
        if not getattr(model, "compiled", False):
            metrics = ["accuracy"] + ([evaluator.metric]
                                      if evaluator.metric not in ("accuracy", "loss") else [])
            steps = epochs * math.ceil(len(data.x_train) / batch_size)
            optimizer = make_optimizer(genome, schedule=evaluator.lr_schedule, steps=steps)
            model.compile(optimizer=optimizer, loss=evaluator.loss, metrics=metrics,
                          steps_per_execution=evaluator.steps_per_execution)
        try:
            fit = model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                            batch_size=batch_size, epochs=epochs, callbacks=callbacks,
                            shuffle=True, verbose=verbose)
        except RuntimeError as error:
            if guard.loss is not None and not math.isfinite(guard.loss):
                raise RuntimeError(f"train_best: {guard.nan_reason()}") from error
            raise
    seconds = time.monotonic() - start
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
