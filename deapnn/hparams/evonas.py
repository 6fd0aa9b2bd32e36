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

The controller (:class:`Controller`) is autoregressive: each decision's distribution is
conditioned on the previous decision, through a table of logits. It plays the paper's
recurrent controller's role without TensorFlow, and is exact for search spaces whose
rewards couple neighbouring decisions, like :func:`synthetic_reward`.

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
from deapnn.core.optim import Adam, check_positive, check_unit_interval
from deapnn.hparams.space import Choice, SearchSpace


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


def _check_space(space: SearchSpace) -> list[int]:
    if not isinstance(space, SearchSpace):
        raise TypeError(f"space must be a SearchSpace, got {space!r}")
    bad = [name for name, gene in space.items() if not isinstance(gene, Choice)]
    if bad:
        raise ValueError(f"Evo-NAS agents need categorical (Choice) genes; not categorical: {bad}")
    return [gene.size for gene in space.genes]


class Controller:
    """An autoregressive categorical policy over a sequence of decisions, trained by REINFORCE.

    ``logits[i][p]`` are the logits of decision ``i`` given that decision ``i - 1`` took option
    ``p`` (decision 0 has a single row). All logits start at zero: the uniform policy.

    Args:
        sizes: Number of options of each decision.
        learning_rate: Step size of the (Adam) policy-gradient update.
        baseline_decay: Decay of the moving-average reward baseline.
        entropy: Weight of an entropy bonus that keeps the policy from collapsing early.
    """

    def __init__(
        self, sizes: Sequence[int], learning_rate: float = 0.1, baseline_decay: float = 0.9, entropy: float = 0.0
    ) -> None:
        self.sizes = list(sizes)
        if not self.sizes or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1
                                 for k in self.sizes):
            raise ValueError(f"Controller: sizes must be ints >= 1, got {sizes!r}")
        self.logits = [np.zeros((1 if i == 0 else self.sizes[i - 1], k)) for i, k in enumerate(self.sizes)]
        self.optimizer = Adam(check_positive("Controller", "learning_rate", learning_rate))
        self.baseline_decay = check_unit_interval("Controller", "baseline_decay", baseline_decay, closed_right=True)
        self.entropy = check_positive("Controller", "entropy", entropy, allow_zero=True)
        self.baseline: float | None = None

    @property
    def learning_rate(self) -> float:
        """The Adam step size of the policy-gradient update."""
        return self.optimizer.learning_rate

    def state(self) -> dict[str, Any]:
        """Logits, baseline and Adam state (copies), for a checkpoint."""
        return {"logits": [w.copy() for w in self.logits], "baseline": self.baseline,
                "optimizer": self.optimizer.state()}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned, in place."""
        self.logits = [np.array(w, dtype=float) for w in state["logits"]]
        self.baseline = state["baseline"]
        self.optimizer.load_state(state["optimizer"])

    def probabilities(self, i: int, previous: int | None) -> np.ndarray:
        row = self.logits[i][0 if i == 0 else previous]
        e = np.exp(row - row.max())
        return e / e.sum()

    def sample(self, i: int, previous: int | None, rng: np.random.Generator) -> int:
        """Option index for decision ``i`` given the previous decision's option index."""
        p = self.probabilities(i, previous)
        return int(rng.choice(len(p), p=p))

    def sample_other(self, i: int, previous: int | None, old: int, rng: np.random.Generator) -> int:
        """Like :meth:`sample`, but never ``old`` (a mutation always changes the decision)."""
        p = self.probabilities(i, previous).copy()
        if p.size == 1:
            return old
        p[old] = 0.0
        total = p.sum()
        p = p / total if total > 0 else np.full(p.size, 1.0 / (p.size - 1)) * (np.arange(p.size) != old)
        return int(rng.choice(p.size, p=p))

    def sample_sequence(self, rng: np.random.Generator) -> list[int]:
        out: list[int] = []
        for i in range(len(self.sizes)):
            out.append(self.sample(i, out[-1] if out else None, rng))
        return out

    def reinforce(
        self, sequences: Sequence[Sequence[int]], masks: Sequence[Sequence[bool]], rewards: Sequence[float]
    ) -> None:
        """One REINFORCE step on the decisions where ``mask`` is true (the ones the controller chose).

        Advantage = reward - moving-average baseline; the update ascends
        ``advantage * grad log pi(decision | previous)`` with Adam.
        """
        rewards = np.asarray(rewards, dtype=float)
        if self.baseline is None:
            self.baseline = float(rewards.mean())
        advantages = rewards - self.baseline
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * float(rewards.mean())
        self._step(sequences, masks, advantages)

    def imitate(self, sequences: Sequence[Sequence[int]]) -> None:
        """One maximum-likelihood step towards ``sequences`` (priority queue training: the best seen)."""
        self._step(sequences, [[True] * len(self.sizes)] * len(sequences), np.ones(len(sequences)))

    def _step(self, sequences: Sequence[Sequence[int]], masks: Sequence[Sequence[bool]], advantages: Any) -> None:
        """Adam ascent on ``mean(advantage * log pi)`` over the masked decisions (+ entropy bonus)."""
        grads = [np.zeros_like(w) for w in self.logits]
        for seq, mask, adv in zip(sequences, masks, advantages):
            for i, (choice, chosen) in enumerate(zip(seq, mask)):
                if not chosen:
                    continue
                row = 0 if i == 0 else seq[i - 1]
                p = self.probabilities(i, seq[i - 1] if i else None)
                g = -p
                g[choice] += 1.0
                grads[i][row] += adv * g
                if self.entropy:
                    logp = np.log(p + 1e-12)
                    grads[i][row] += self.entropy * (-p * (logp - np.sum(p * logp)))
        n = max(len(advantages), 1)
        self.logits = self.optimizer.step(self.logits, [g / n for g in grads])


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
                child[i] = self._propose(i, child[i - 1] if i else None, parent[i])
        return child, mask

    def _propose(self, i: int, previous: int | None, old: int) -> int:
        """Uniform resampling to a different option (pure evolution)."""
        k = self.sizes[i]
        new = int(self.rng.integers(k - 1)) if k > 1 else old
        return new + 1 if k > 1 and new >= old else new

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

    def _init_learner(self, training: str, queue_size: int, learning_rate: float, entropy: float) -> None:
        if training not in self.TRAINING:
            raise ValueError(f"training must be one of {self.TRAINING}, got {training!r}")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size must be an int >= 1, got {queue_size!r}")
        self.training, self.queue_size = training, queue_size
        self.controller = Controller(self.sizes, learning_rate=learning_rate, entropy=entropy)
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


class NeuralAgent(_Agent, _Learner):
    """A controller that proposes whole individuals, trained on their rewards.

    Args:
        space: A search space of :class:`~deapnn.hparams.space.Choice` genes.
        lambda_: Individuals sampled per generation (one training batch).
        training: ``"pqt"`` (default) or ``"reinforce"``; ``queue_size`` for PQT.
        learning_rate, entropy: Passed to :class:`Controller`.
        rng: numpy Generator (default :func:`deapnn.core.seeding.get_rng`).
    """

    def __init__(
        self,
        space: SearchSpace,
        lambda_: int = 10,
        training: str = "pqt",
        queue_size: int = 10,
        learning_rate: float = 0.05,
        entropy: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(space, lambda_, rng)
        self._init_learner(training, queue_size, learning_rate, entropy)

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
        training, queue_size, learning_rate, entropy: As :class:`NeuralAgent`; the rest as
            :class:`EvolutionAgent`.
    """

    def __init__(
        self,
        space: SearchSpace,
        *evolution: Any,
        training: str = "pqt",
        queue_size: int = 10,
        learning_rate: float = 0.05,
        entropy: float = 0.0,
        **evolution_kwargs: Any,
    ) -> None:
        super().__init__(space, *evolution, **evolution_kwargs)
        self._init_learner(training, queue_size, learning_rate, entropy)

    def _propose(self, i: int, previous: int | None, old: int) -> int:
        return self.controller.sample_other(i, previous, old, self.rng)

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
