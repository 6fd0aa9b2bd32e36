"""A cheap multi-fidelity evaluator on the digits, and a run that can SIGKILL itself mid-rung.

:class:`SoftmaxDigits` trains a softmax regression on sklearn's digits with numpy mini-batch
SGD (milliseconds): it has the ``train_budget`` protocol of
:meth:`deapnn.keras.KerasEvaluator.train_budget` (budgets in epochs, resume from a saved state,
steps that add up), and appends one line per finished training to ``<log>``.

Usage: python tests/fidelity_script.py FOLDER NGEN [KILL_AT]

Runs a seeded ``deapnn.evolve`` (make_toolbox(novel=True), eaSimple-style) with
:class:`~deapnn.core.fidelity.MultiFidelity` (budgets 0.25, 0.5, 1 epochs, promote 0.5),
checkpoint ``FOLDER/run.pkl`` (store ``run.pkl.sqlite``), rung states in ``FOLDER/states``,
``FOLDER/trainings.log`` (one ``digest rung`` line per finished training) and, at the end,
``FOLDER/result.pkl``. With KILL_AT, the process SIGKILLs itself at the start of training
number KILL_AT + 1 (KILL_AT trainings finished, in the middle of a rung).
"""

from __future__ import annotations

import functools
import os
import pickle
import signal
import sys
from pathlib import Path

import numpy as np
from deap import tools

import deapnn
from deapnn.core.fidelity import MultiFidelity
from deapnn.core.fingerprint import key_digest
from deapnn.data import get_dataset, load_digits
from deapnn.hparams.space import Choice, SearchSpace
from deapnn.keras.evaluator import _batch_indices, budget_steps, genome_seed

DIGITS = functools.partial(load_digits, seed=0)
SPACE = SearchSpace([("learning_rate", Choice([0.003, 0.01, 0.03, 0.1, 0.3])),
                     ("batch_size", Choice([16, 32, 64])),
                     ("l2", Choice([0.0, 1e-4, 1e-3, 1e-2]))])


class SoftmaxDigits:
    """Softmax regression on the digits, trained to a budget of epochs with numpy SGD.

    Args:
        log: a file that gets ``<key digest> <budget>`` per finished training, or None.
        kill_at: SIGKILL this process at the start of training number ``kill_at + 1``.
    """

    fractional_budgets = True
    weights = (1.0,)

    def __init__(self, log: str | None = None, kill_at: int | None = None) -> None:
        self.log = log
        self.kill_at = kill_at
        self._count = 0

    def fingerprint(self) -> str:
        return "softmax-digits-v1"

    def __call__(self, genome):
        return self.train_budget(genome, 1.0).fitness

    def train_budget(self, genome, budget, *, total=None, resume=None, save=None):
        from deapnn.keras.evaluator import TrainingRecord

        if self.kill_at is not None and self._count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        self._count += 1
        values = genome.as_dict()
        data = get_dataset(DIGITS)
        x = data.x_train.reshape(len(data.x_train), -1)
        n, d = x.shape
        k = data.n_classes
        batch = int(values["batch_size"])
        w, first = np.zeros((d, k)), 0
        if resume is not None and os.path.exists(resume):
            with np.load(resume) as saved:
                w, first = saved["w"], int(saved["steps"])
        stop = budget_steps(budget, n, batch)
        seed = genome_seed(genome)
        if stop > first:
            index = _batch_indices(seed, n, first, stop, batch)
            for s in range(stop - first):
                rows = index[s * batch:(s + 1) * batch]
                xb, yb = x[rows], data.y_train[rows]
                p = _softmax(xb @ w)
                p[np.arange(len(yb)), yb] -= 1.0
                w = w - float(values["learning_rate"]) * (xb.T @ p / len(yb)
                                                          + float(values["l2"]) * w)
        steps = max(stop, first)
        if save is not None:
            np.savez(save, w=w, steps=steps)
        xv = data.x_val.reshape(len(data.x_val), -1)
        score = float(np.mean(np.argmax(xv @ w, axis=1) == data.y_val))
        if self.log is not None:
            with open(self.log, "a") as f:
                f.write(f"{key_digest(genome.key())} {budget}\n")
        return TrainingRecord((score,), score, d * k, 1, 0.0, False, steps=steps,
                              start_steps=first)


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def run(folder: Path, ngen: int, kill_at: int | None = None):
    evaluator = SoftmaxDigits(log=str(folder / "trainings.log"), kill_at=kill_at)
    deapnn.seed(7)
    toolbox = deapnn.make_toolbox(SPACE, evaluator, novel=True)
    fidelity = MultiFidelity(evaluator, (0.25, 0.5, 1.0), 0.5, folder=folder / "states")
    fidelity.install(toolbox)
    population = toolbox.population(n=8)
    hof = tools.HallOfFame(3)
    population, logbook = deapnn.evolve(population, toolbox, ngen, cxpb=0.5, mutpb=0.5,
                                        halloffame=hof, checkpoint=folder / "run.pkl")
    return population, hof, logbook, fidelity


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    ngen = int(sys.argv[2])
    kill = int(sys.argv[3]) if len(sys.argv) > 3 else None
    population, hof, logbook, fidelity = run(folder, ngen, kill)
    (folder / "result.pkl").write_bytes(pickle.dumps({
        "population": [(list(ind), ind.fitness.values) for ind in population],
        "hof": [(list(ind), ind.fitness.values) for ind in hof],
        "nevals": logbook.select("nevals")}))
