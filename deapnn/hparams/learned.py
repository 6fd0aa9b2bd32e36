"""The Evo-NAS learned mutation as a plain DEAP operator: :func:`mut_learned`.

Maziarz et al. 2018 (arXiv 1811.09828) mutate a parent by resampling some of its decisions from
a controller instead of uniformly, and train the controller on the children's rewards. Here
that mutation is an ordinary ``toolbox.mutate`` (``individual, indpb -> (individual,)``), so
DEAP's ``eaSimple``, ``eaMuPlusLambda`` or :func:`deapnn.evolve` run it unchanged::

    toolbox = deapnn.make_toolbox(space, evaluate, mutate="learned")   # or, by hand:
    learner = LearnedMutation(space, controller="recurrent")
    toolbox.register("mutate", mut_learned, indpb=1 / len(space), learner=learner)

How it learns without a new algorithm: the operator keeps a reference to every child it
mutated. DEAP's algorithm then evaluates the children through ``toolbox.map`` (deapnn's
evaluation cache answers duplicates) and writes their fitness on them; at its next call the
operator reads those fitnesses and makes one controller update on that batch (priority-queue
training on the best children seen, or REINFORCE on the decisions it chose). The learning
therefore lags one generation and needs nothing from the algorithm.

Checkpoints: :class:`LearnedMutation` has ``state()`` / ``load_state()`` (controller, queue and
the children still waiting, as plain data). :func:`deapnn.evolve` saves and restores every object
with that protocol that it finds behind ``toolbox.mutate`` -- the registered object itself or an
argument of the ``functools.partial`` DEAP's ``register`` makes -- so a run resumes exactly.

Randomness: Python's :mod:`random` module, as DEAP's operators (seed it with :func:`deapnn.seed`);
the recurrent controller's initial weights come from a fixed seed.
"""

from __future__ import annotations

import bisect
import itertools
import random
from typing import Any, Sequence

import numpy as np

from deapnn.core.options import check_probability
from deapnn.hparams.evonas import _build_learner, _check_space
from deapnn.hparams.space import SearchSpace

__all__ = ["LearnedMutation", "mut_learned"]


class LearnedMutation:
    """The state of :func:`mut_learned`: a controller, its training queue and the children waiting
    for their fitness. Calling it is :func:`mut_learned` with this learner.

    Args:
        space: A search space of :class:`~deapnn.hparams.space.Choice` genes only.
        controller: ``"recurrent"`` (default; each decision conditioned on all previous ones) or
            ``"table"`` (on the previous one), see :mod:`deapnn.hparams.controllers`.
        training: ``"pqt"`` (default; maximum likelihood on the ``queue_size`` best children
            seen) or ``"reinforce"`` (on the mutated decisions, moving-average baseline).
        queue_size: Size of the PQT queue (an int >= 1).
        learning_rate: The controller's Adam step size (> 0); default per controller
            (:data:`deapnn.hparams.evonas.LEARNING_RATES`).
        entropy: Weight of the controller's entropy bonus (>= 0).
        explore: Weight in [0, 1] of uniform resampling mixed into the controller's proposals
            (0: the controller alone, as in the paper; 1: :func:`~deapnn.hparams.operators.mut_resample`).
            The default 0.5 keeps half of evolution's exploration: on the far-coupled synthetic
            tasks the controller alone narrowed the search and fell behind plain evolution.
        rates: If true, the controller also decides *which* genes to mutate: gene ``i`` is
            mutated with probability ``indpb * ((1 - explore) * r_i + explore)`` (at most 1), where
            ``r_i = (1 - p_i(parent's value)) / (1 - 1 / k_i)`` for a gene of ``k_i`` values and
            ``p_i`` the controller's distribution given the decisions before it. A uniform
            controller gives ``r_i = 1`` (``mut_resample``'s rate); a gene whose parent value
            the controller has learned to expect is mutated less, one whose value it has learned
            to avoid up to ``k_i / (k_i - 1)`` times more. This is what lets the controller act
            on two-valued genes, where "a different value" is forced. Off by default: on the
            tabulated digits table (``benchmarks/evonas_tabulated.py --rates``, seeds 1000-1099)
            it did not reach a top-1% network sooner (median 34 evaluations, 32 without it).

    Raises:
        TypeError: If ``space`` is not a SearchSpace.
        ValueError: For a gene that is not categorical (named), or a knob out of range (named).
    """

    def __init__(self, space: SearchSpace, controller: str = "recurrent", training: str = "pqt",
                 queue_size: int = 10, learning_rate: float | None = None, entropy: float = 0.0,
                 explore: float = 0.5, rates: bool = False) -> None:
        self.sizes = _check_space(space, "mut_learned and LearnedMutation")
        self.explore = check_probability("LearnedMutation explore", explore)
        if not isinstance(rates, bool):
            raise TypeError(f"LearnedMutation rates must be a bool, got {rates!r}")
        self.rates = rates
        self.space = space
        self.controller_kind = controller
        self.training, self.queue_size, self.controller = _build_learner(
            self.sizes, training, queue_size, learning_rate, entropy, controller)
        self.queue: dict[tuple[int, ...], float] = {}
        self.updates = 0
        # children mutated and not yet learned from: [individual or None, indices, mask, reward or None]
        self._pending: list[list[Any]] = []

    def __call__(self, individual: Any, indpb: float) -> tuple[Any]:
        return mut_learned(individual, indpb, self)

    # -- bookkeeping ------------------------------------------------------------------------
    def _indices(self, individual: Sequence[Any]) -> list[int]:
        return [gene.index(v) for gene, v in zip(self.space.genes, individual)]

    def _resolve(self, entry: list[Any]) -> tuple[list[int], list[bool], float | None]:
        """``(indices, mask, reward)`` of a pending child as it is now: its current genome (a
        decorator such as :class:`~deapnn.hparams.toolbox.NovelChildren` may have changed it after
        the mutation; a decision changed since no longer counts as the controller's) and its
        (weighted) first fitness value, or None while it has no fitness."""
        individual, seq, mask, reward = entry
        if individual is None:
            return seq, mask, reward
        fitness = getattr(individual, "fitness", None)
        reward = float(fitness.wvalues[0]) if fitness is not None and fitness.valid else None
        now = self._indices(individual)
        return now, [m and a == b for m, a, b in zip(mask, seq, now)], reward

    def learn(self) -> bool:
        """Learn from every pending child that has a fitness now (one controller update);
        :func:`mut_learned` calls this first. Returns whether an update was made."""
        ready, waiting = [], []
        for entry in self._pending:
            seq, mask, reward = self._resolve(entry)
            if reward is not None:
                ready.append((seq, mask, reward))
            elif entry[0] is not None:  # a restored child that had no fitness is dropped
                waiting.append(entry)
        self._pending = waiting[-4096:]
        if not ready:
            return False
        values = np.array([r for _, _, r in ready], dtype=float)
        finite = np.isfinite(values)
        worst = values[finite].min() if finite.any() else 0.0
        rewards = list(np.where(finite, values, worst))  # a failed child counts as the worst
        seqs = [list(seq) for seq, _, _ in ready]
        if self.training == "reinforce":
            self.controller.reinforce(seqs, [mask for _, mask, _ in ready], rewards)
        else:
            for seq, reward in zip(seqs, rewards):
                self.queue[tuple(seq)] = float(reward)
            best = sorted(self.queue.items(), key=lambda kv: kv[1], reverse=True)[: self.queue_size]
            self.queue = dict(best)
            self.controller.imitate([list(seq) for seq, _ in best])
        self.updates += 1
        return True

    # -- state ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Controller, queue, update count and the pending children as plain data (their
        indices, mask and fitness read now), for a checkpoint."""
        return {
            "controller": self.controller.state(),
            "queue": {seq: float(r) for seq, r in self.queue.items()},
            "updates": self.updates,
            "pending": [self._resolve(e) for e in self._pending],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned, in place."""
        self.controller.load_state(state["controller"])
        self.queue = {tuple(seq): float(r) for seq, r in state["queue"].items()}
        self.updates = int(state["updates"])
        self._pending = [[None, list(seq), list(mask), reward] for seq, mask, reward in state["pending"]]

    def __getstate__(self) -> dict[str, Any]:  # pickled without references to live individuals
        d = dict(self.__dict__)
        d["_pending"] = [[None, *self._resolve(e)] for e in self._pending]
        return d

    def __repr__(self) -> str:
        return (f"LearnedMutation(controller={self.controller_kind!r}, training={self.training!r}, "
                f"queue_size={self.queue_size}, explore={self.explore}, rates={self.rates}, updates={self.updates})")


def _draw(p: np.ndarray, rng: Any) -> int:
    """Index drawn from probabilities ``p`` with ``rng.random()`` (inverse CDF)."""
    cdf = list(itertools.accumulate(p.tolist()))
    return min(bisect.bisect_right(cdf, rng.random() * cdf[-1]), len(cdf) - 1)


def mut_learned(individual: Any, indpb: float, learner: LearnedMutation) -> tuple[Any]:
    """The Evo-NAS mutation: each gene, with probability ``indpb`` (scaled per gene by the
    controller when ``learner.rates``, see :class:`LearnedMutation`), takes a *different* value
    sampled from ``learner``'s controller given the child's decisions before it.

    First ``learner`` learns from the children of its earlier calls that have a fitness now
    (:meth:`LearnedMutation.learn`); then this child is mutated in place and remembered, so its
    fitness trains the controller at a later call. Genes with one value are never changed; every
    value written is one of its gene's values. While the controller is uniform (at the start)
    this is :func:`~deapnn.hparams.operators.mut_resample` on categorical genes.

    Args:
        individual: A genome of ``learner.space``.
        indpb: Probability that each gene is mutated, in [0, 1].
        learner: The :class:`LearnedMutation` holding the controller.

    Returns:
        ``(individual,)``, changed in place.

    Raises:
        ValueError: If ``indpb`` is NaN or outside [0, 1].
        TypeError: If ``learner`` is not a :class:`LearnedMutation`.

    Randomness: Python's :mod:`random` (one draw per gene, one more per mutated gene).
    """
    check_probability("mut_learned indpb", indpb)
    if not isinstance(learner, LearnedMutation):
        raise TypeError(f"mut_learned needs learner=LearnedMutation(space), got {learner!r}")
    learner.learn()
    genes = learner.space.genes
    seq = learner._indices(individual)
    mask = [False] * len(seq)
    for i, gene in enumerate(genes):
        k = learner.sizes[i]
        if k > 1 and getattr(learner, "rates", False):
            p_old = float(learner.controller.probabilities(i, seq[:i])[seq[i]])
            rate = (1.0 - p_old) / (1.0 - 1.0 / k)
            p_gene = min(1.0, indpb * ((1.0 - learner.explore) * rate + learner.explore))
        else:
            p_gene = indpb
        if random.random() < p_gene and k > 1:
            seq[i] = _draw(learner.controller.other_probabilities(i, seq[:i], seq[i], learner.explore), random)
            individual[i] = gene.values[seq[i]]
            mask[i] = True
    if any(mask):
        learner._pending.append([individual, list(seq), mask, None])
    return (individual,)
