"""Evo-NAS: evolutionary, neural and hybrid agents for architecture search (seed 003).

Three agents over a finite search space of categorical decisions, all DEAP *strategies*
(``generate``/``update``) so that :func:`deap.algorithms.eaGenerateUpdate` drives them
unchanged, with deapnn's evaluation cache and parallel ``map``:

* :class:`EvolutionAgent` -- regularized (aging) evolution, Real et al. 2018: a tournament
  picks a parent from the newest ``population_size`` individuals; each decision is
  resampled with probability ``p_mutate``; the oldest individual dies.
* :class:`NeuralAgent` -- a controller proposes every decision and is trained by
  REINFORCE on the rewards (Zoph & Le 2016).
* :class:`EvoNASAgent` -- the hybrid of Maziarz et al. 2018 (arXiv 1811.09828): evolution
  whose mutated decisions are *sampled from the controller* instead of uniformly; the
  controller starts uniform (pure evolution) and learns, from the children's rewards,
  which mutations pay.

The controller (:mod:`deapnn.hparams.controllers`) is autoregressive, chosen by
``controller=``: ``"table"`` (:class:`~deapnn.hparams.controllers.TableController`) conditions
each decision on the previous one, which is exact for rewards that couple neighbouring decisions
like :func:`synthetic_reward`; ``"recurrent"``
(:class:`~deapnn.hparams.controllers.RecurrentController`) conditions each decision on all
previous ones, as the paper's recurrent controller does, for rewards that couple decisions far
apart (:class:`ChainReward` with :func:`far_order`). Neither needs TensorFlow.

Every agent has ``state()`` / ``load_state()`` (its population, controller, queue and own
generator), so :func:`deapnn.evolve` (``algorithm="generate_update"``) checkpoints and resumes it
exactly. The controller learns with the Adam of :mod:`deapnn.core.optim`, the one OpenAI-ES uses.

Randomness: every agent draws from its ``rng`` (a :class:`numpy.random.Generator`), or, when
built without one, from :func:`deapnn.core.seeding.get_rng` looked up at each call.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Sequence

import numpy as np

from deapnn.core import seeding
from deapnn.hparams.controllers import CONTROLLERS, RecurrentController, TableController, make_controller  # noqa: F401
from deapnn.hparams.space import Choice, SearchSpace

#: The table controller under its earlier name.
Controller = TableController


def synthetic_space(n: int) -> SearchSpace:
    """Seed 003's synthetic task space: ``n`` decisions ``a_i`` in ``{1..n}``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    return SearchSpace({f"a{i + 1}": Choice(list(range(1, n + 1))) for i in range(n)})


def synthetic_reward(genome: Sequence[int]) -> tuple[float]:
    """``r(a) = (n+1) / (a_1^2 + sum_k (a_{k+1} - a_k)^2 + (a_n - (n+1))^2)``; ``r = 1`` at ``a_k = k``."""
    a = np.asarray(list(genome), dtype=float)
    n = a.size
    denominator = a[0] ** 2 + float(np.sum(np.diff(a) ** 2)) + (a[-1] - (n + 1)) ** 2
    return ((n + 1) / denominator,)


def far_order(n: int) -> list[int]:
    """A chain order whose neighbours are about ``n / 2`` decisions apart: ``0, m, 1, m+1, ...``
    with ``m = ceil(n / 2)``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    m = (n + 1) // 2
    return [x for pair in zip(range(m), range(m, n)) for x in pair] + ([m - 1] if n % 2 else [])


class ChainReward:
    """:func:`synthetic_reward` of the decisions taken in the order ``order``: the reward couples
    decision ``order[k]`` with decision ``order[k+1]``, however far apart they are in the sequence
    the agents decide. The optimum (reward 1) has ``a[order[k]] = k + 1``.

    ``ChainReward(range(n))`` is :func:`synthetic_reward`; ``ChainReward(far_order(n))`` couples
    decisions about ``n / 2`` apart; ``ChainReward(numpy.random.default_rng(s).permutation(n))``
    couples them at random distances. A picklable callable, so it can be a toolbox's evaluate.

    Raises:
        ValueError: If ``order`` is not a permutation of ``0..n-1`` (n >= 2).
    """

    def __init__(self, order: Sequence[int]) -> None:
        self.order = [int(i) for i in order]
        if len(self.order) < 2 or sorted(self.order) != list(range(len(self.order))):
            raise ValueError(f"order must be a permutation of 0..n-1 with n >= 2, got {list(order)!r}")

    def __call__(self, genome: Sequence[int]) -> tuple[float]:
        values = list(genome)
        if len(values) != len(self.order):
            raise ValueError(f"ChainReward: expected {len(self.order)} decisions, got {len(values)}")
        return synthetic_reward([values[i] for i in self.order])

    def __repr__(self) -> str:
        return f"ChainReward({self.order!r})"


def _check_space(space: SearchSpace, owner: str = "Evo-NAS agents") -> list[int]:
    if not isinstance(space, SearchSpace):
        raise TypeError(f"space must be a SearchSpace, got {space!r}")
    bad = [name for name, gene in space.items() if not isinstance(gene, Choice)]
    if bad:
        raise ValueError(f"{owner} need categorical (Choice) genes; not categorical: {bad}")
    return [gene.size for gene in space.genes]


class _Memory:
    """The end of the ``_memory`` chain: each agent class and mixin adds what it learns."""

    def _memory(self) -> dict[str, Any]:
        return {}

    def _load_memory(self, state: dict[str, Any]) -> None:
        pass


class _Agent(_Memory):
    """Shared plumbing: the space, decision sizes, index <-> value conversion and the rng."""

    def __init__(self, space: SearchSpace, lambda_: int, rng: np.random.Generator | None) -> None:
        self.sizes = _check_space(space)
        if isinstance(lambda_, bool) or not isinstance(lambda_, int) or lambda_ < 1:
            raise ValueError(f"lambda_ must be an int >= 1, got {lambda_!r}")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator or None, got {rng!r}")
        self.space, self.lambda_ = space, lambda_
        self._own_rng = rng
        self._masks: list[list[bool]] = []

    @property
    def rng(self) -> np.random.Generator:
        """The agent's own generator, or (when built without one) deapnn's shared generator,
        looked up at each call so :func:`deapnn.seed` always applies."""
        return seeding.get_rng() if self._own_rng is None else self._own_rng

    def state(self) -> dict[str, Any]:
        """Everything that changes during a run, for a checkpoint: the agent's memory
        (:meth:`_memory`) and its own ``rng`` state (the shared generator is saved by
        :func:`deapnn.core.seeding.get_state`)."""
        return {
            "masks": [[bool(x) for x in m] for m in self._masks],
            "rng": None if self._own_rng is None else self._own_rng.bit_generator.state,
            **self._memory(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned, in place."""
        if (self._own_rng is None) != (state["rng"] is None):
            raise ValueError("load_state: the saved state and this agent disagree on having their own rng")
        if self._own_rng is not None:
            self._own_rng.bit_generator.state = state["rng"]
        self._masks = [list(m) for m in state["masks"]]
        self._load_memory(state)

    def _values(self, indices: Sequence[int]) -> list[Any]:
        return [gene.values[i] for gene, i in zip(self.space.genes, indices)]

    def _indices(self, individual: Sequence[Any]) -> list[int]:
        return [gene.index(v) for gene, v in zip(self.space.genes, individual)]

    def _random(self) -> list[int]:
        return [int(self.rng.integers(k)) for k in self.sizes]

    def _make(self, ind_init: Callable[..., Any], indices: Sequence[int]) -> Any:
        return ind_init(self._values(indices), self.space)


class EvolutionAgent(_Agent):
    """Regularized evolution (Real et al. 2018) as a DEAP strategy.

    Args:
        space: A search space of :class:`~deapnn.hparams.space.Choice` genes.
        population_size: How many of the newest individuals stay alive.
        sample_size: Tournament size for picking a parent.
        p_mutate: Probability that each decision of a child is resampled (at least one is).
        lambda_: Children per generation.
        rng: numpy Generator (default :func:`deapnn.core.seeding.get_rng`).

    Until the population is full, ``generate`` returns random individuals.
    """

    def __init__(
        self,
        space: SearchSpace,
        population_size: int = 50,
        sample_size: int = 10,
        p_mutate: float | None = None,
        lambda_: int = 10,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(space, lambda_, rng)
        if population_size < 2 or not 1 <= sample_size <= population_size:
            raise ValueError(
                f"need population_size >= 2 and 1 <= sample_size <= population_size, "
                f"got population_size={population_size!r}, sample_size={sample_size!r}"
            )
        self.p_mutate = 1.0 / len(space) if p_mutate is None else p_mutate
        if not 0.0 <= self.p_mutate <= 1.0:
            raise ValueError(f"p_mutate must be in [0, 1], got {self.p_mutate!r}")
        self.population_size, self.sample_size = population_size, sample_size
        self.population: deque[tuple[list[int], float]] = deque(maxlen=population_size)

    def _mutant(self, parent: list[int]) -> tuple[list[int], list[bool]]:
        mask = list(self.rng.random(len(parent)) < self.p_mutate)
        if not any(mask):
            mask[int(self.rng.integers(len(parent)))] = True
        child = list(parent)
        for i, mutated in enumerate(mask):
            if mutated:
                child[i] = self._propose(i, child[:i], parent[i])
        return child, mask

    def _propose(self, i: int, prefix: list[int], old: int) -> int:
        """Uniform resampling to a different option (pure evolution).

        Drawn as the Evo-NAS hybrid draws its controller's proposals (``rng.choice`` over the
        other options, one uniform number by inverse CDF), so that with the same ``rng`` the
        hybrid *is* this evolution, draw for draw, as long as its controller is uniform, and
        departs from it only where the controller has learned something (common random
        numbers: the two agents' results differ by what the controller adds, not by luck)."""
        k = self.sizes[i]
        p = np.ones(1)
        if k > 1:
            p = np.full(k, 1.0 / (k - 1))
            p[old] = 0.0
        return int(self.rng.choice(k, p=p))

    def _parent(self) -> list[int]:
        picks = self.rng.choice(len(self.population), size=self.sample_size, replace=False)
        return max((self.population[int(j)] for j in picks), key=lambda pair: pair[1])[0]

    def generate(self, ind_init: Callable[..., Any]) -> list[Any]:
        """``lambda_`` children (or random individuals while the population fills up)."""
        children, self._masks = [], []
        for _ in range(self.lambda_):
            if len(self.population) < self.population_size:
                child, mask = self._random(), [False] * len(self.sizes)
            else:
                child, mask = self._mutant(self._parent())
            children.append(self._make(ind_init, child))
            self._masks.append(mask)
        return children

    def update(self, population: Sequence[Any]) -> None:
        """Add the evaluated children; the oldest individuals die."""
        for ind in population:
            self.population.append((self._indices(ind), float(ind.fitness.wvalues[0])))

    def _memory(self) -> dict[str, Any]:
        return {"population": [(list(seq), float(reward)) for seq, reward in self.population],
                **super()._memory()}

    def _load_memory(self, state: dict[str, Any]) -> None:
        super()._load_memory(state)
        self.population.clear()
        self.population.extend((list(seq), reward) for seq, reward in state["population"])


class _Learner(_Memory):
    """The controller and how it learns: ``"pqt"`` (priority queue training, Abolafia et al. 2018 --
    maximum likelihood on the ``queue_size`` best individuals seen so far) or ``"reinforce"``."""

    TRAINING = ("pqt", "reinforce")

    #: Default learning rate per controller kind (a subclass may have its own).
    LEARNING_RATES: dict[str, float] = {}

    def _init_learner(self, training: str, queue_size: int, learning_rate: float | None, entropy: float,
                      controller: str = "table") -> None:
        self.training, self.queue_size, self.controller = _build_learner(
            self.sizes, training, queue_size, learning_rate, entropy, controller, self.LEARNING_RATES)
        self.queue: dict[tuple[int, ...], float] = {}

    def _memory(self) -> dict[str, Any]:
        return {"controller": self.controller.state(),
                "queue": {seq: float(reward) for seq, reward in self.queue.items()}, **super()._memory()}

    def _load_memory(self, state: dict[str, Any]) -> None:
        super()._load_memory(state)
        self.controller.load_state(state["controller"])
        self.queue = dict(state["queue"])

    def _learn(self, sequences: list[list[int]], masks: list[list[bool]], rewards: list[float]) -> None:
        if not sequences:
            return
        if self.training == "reinforce":
            self.controller.reinforce(sequences, masks, rewards)
            return
        for seq, reward in zip(sequences, rewards):
            self.queue[tuple(seq)] = reward
        best = sorted(self.queue.items(), key=lambda kv: kv[1], reverse=True)[: self.queue_size]
        self.queue = dict(best)
        self.controller.imitate([list(seq) for seq, _ in best])


#: Default learning rates of the controllers of :class:`NeuralAgent` and
#: :func:`~deapnn.hparams.learned.mut_learned` (measured on the synthetic tasks).
LEARNING_RATES = {"table": 0.05, "recurrent": 0.02}

#: Default learning rates of :class:`EvoNASAgent`'s controller. The recurrent one learns faster
#: than the neural agent's (0.05, not 0.02): the hybrid needs its controller's help within the
#: first tens of generations. On tuning seeds 1000-1099 of the six synthetic tasks (n = 10, 20;
#: chain, far, permuted) 0.05 gave a larger paired margin over evolution than 0.02 at N = 250 on all
#: six and at N = 500 on five (equal on the sixth); at N = 2000 (seeds 1000-1039, five tasks
#: measured) larger on three and smaller by at most 0.021 (far, n = 20), the margin staying > 0.06.
EVONAS_LEARNING_RATES = {"table": 0.05, "recurrent": 0.05}


def _build_learner(sizes: list[int], training: str, queue_size: int, learning_rate: float | None, entropy: float,
                   controller: str, defaults: dict[str, float] | None = None) -> tuple[str, int, Any]:
    """Check the learner's knobs and build its controller (shared with :mod:`deapnn.hparams.learned`);
    ``learning_rate=None`` takes ``defaults`` (default :data:`LEARNING_RATES`) for the controller's kind."""
    if training not in _Learner.TRAINING:
        raise ValueError(f"training must be one of {_Learner.TRAINING}, got {training!r}")
    if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
        raise ValueError(f"queue_size must be an int >= 1, got {queue_size!r}")
    if controller not in CONTROLLERS:
        raise ValueError(f"controller must be one of {tuple(CONTROLLERS)}, got {controller!r}")
    lr = {**LEARNING_RATES, **(defaults or {})}[controller] if learning_rate is None else learning_rate
    return training, queue_size, make_controller(controller, sizes, learning_rate=lr, entropy=entropy)


class NeuralAgent(_Agent, _Learner):
    """A controller that proposes whole individuals, trained on their rewards.

    Args:
        space: A search space of :class:`~deapnn.hparams.space.Choice` genes.
        lambda_: Individuals sampled per generation (one training batch).
        training: ``"pqt"`` (default) or ``"reinforce"``; ``queue_size`` for PQT.
        controller: ``"table"`` (default; conditions each decision on the previous one) or
            ``"recurrent"`` (on all previous ones), see :mod:`deapnn.hparams.controllers`.
        learning_rate: The controller's Adam step size (> 0); default :data:`LEARNING_RATES`.
        entropy: Weight of the controller's entropy bonus (>= 0).
        rng: numpy Generator (default :func:`deapnn.core.seeding.get_rng`).
    """

    def __init__(
        self,
        space: SearchSpace,
        lambda_: int = 10,
        training: str = "pqt",
        queue_size: int = 10,
        learning_rate: float | None = None,
        entropy: float = 0.0,
        rng: np.random.Generator | None = None,
        controller: str = "table",
    ) -> None:
        super().__init__(space, lambda_, rng)
        self._init_learner(training, queue_size, learning_rate, entropy, controller)

    def generate(self, ind_init: Callable[..., Any]) -> list[Any]:
        return [self._make(ind_init, self.controller.sample_sequence(self.rng)) for _ in range(self.lambda_)]

    def update(self, population: Sequence[Any]) -> None:
        seqs = [self._indices(ind) for ind in population]
        self._learn(seqs, [[True] * len(self.sizes)] * len(seqs), _rewards(population))


class EvoNASAgent(EvolutionAgent, _Learner):
    """The Evo-NAS hybrid: regularized evolution whose mutations the controller proposes.

    Each child copies its parent's decisions; each decision chosen for mutation (probability
    ``p_mutate``, at least one) is sampled from the controller given the child's previous
    decision. The controller learns from the children's rewards (PQT: the best children seen;
    REINFORCE: the decisions it chose). It starts uniform, so the agent starts as pure evolution.

    Args:
        explore: Weight in [0, 1] of evolution's uniform resampling mixed into the controller's
            proposals (0: the controller alone, as in the paper).
        learning_rate: The controller's Adam step size (> 0); default :data:`EVONAS_LEARNING_RATES`.
        training, queue_size, entropy, controller: As :class:`NeuralAgent`; the rest as
            :class:`EvolutionAgent`.
    """

    LEARNING_RATES = EVONAS_LEARNING_RATES

    def __init__(
        self,
        space: SearchSpace,
        *evolution: Any,
        training: str = "pqt",
        queue_size: int = 10,
        learning_rate: float | None = None,
        entropy: float = 0.0,
        controller: str = "table",
        explore: float = 0.0,
        **evolution_kwargs: Any,
    ) -> None:
        super().__init__(space, *evolution, **evolution_kwargs)
        self._init_learner(training, queue_size, learning_rate, entropy, controller)
        if not 0.0 <= explore <= 1.0:
            raise ValueError(f"explore must be in [0, 1], got {explore!r}")
        self.explore = float(explore)

    def _propose(self, i: int, prefix: list[int], old: int) -> int:
        return self.controller.sample_other(i, prefix, old, self.rng, self.explore)

    def update(self, population: Sequence[Any]) -> None:
        super().update(population)
        self._learn([self._indices(ind) for ind in population], list(self._masks), _rewards(population))


def _rewards(individuals: Sequence[Any]) -> list[float]:
    """The (weighted, so larger is better) first fitness values; a failed (non-finite) one counts
    as the worst finite reward of the batch."""
    values = np.array([ind.fitness.wvalues[0] for ind in individuals], dtype=float)
    finite = np.isfinite(values)
    worst = values[finite].min() if finite.any() else 0.0
    return list(np.where(finite, values, worst))
