"""Controllers for Evo-NAS: autoregressive policies over a sequence of categorical decisions.

A controller gives, for decision ``i``, a distribution over its options conditioned on the
decisions before it (the *prefix*), samples from it, and learns by REINFORCE with a
moving-average baseline (:meth:`reinforce`) or by maximum likelihood on the best sequences seen
(priority-queue training, :meth:`imitate`). Both controllers start uniform.

* :class:`TableController` (``controller="table"``) -- logits of decision ``i`` given decision
  ``i - 1`` only, one table row per previous option. Exact for rewards that couple neighbours.
* :class:`RecurrentController` (``controller="recurrent"``) -- conditions every decision on
  *all* previous ones through a recurrent state (see its docstring for the model and why it is
  a numpy model rather than the paper's Keras LSTM).

Both learn with the Adam of :mod:`deapnn.core.optim`. Randomness: sampling draws from the
``rng`` passed to each call; :class:`RecurrentController`'s embedding initialisation draws from
``numpy.random.default_rng(init_seed)`` (a fixed seed, so two controllers built alike are equal).
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from deapnn.core.optim import Adam, check_positive, check_unit_interval

__all__ = ["CONTROLLERS", "RecurrentController", "TableController", "make_controller"]


def _check_sizes(owner: str, sizes: Sequence[int]) -> list[int]:
    sizes = list(sizes)
    if not sizes or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in sizes):
        raise ValueError(f"{owner}: sizes must be a non-empty list of ints >= 1, got {sizes!r}")
    return [int(k) for k in sizes]


class _Controller:
    """Shared parts: sizes, Adam, baseline, entropy, index checks, sampling and the two trainings.

    Subclasses give :meth:`probabilities` and ``_gradients`` (ascent directions for
    ``mean(advantage * log pi)`` over masked decisions, plus the entropy bonus) on ``self.params``.
    """

    def __init__(self, sizes: Sequence[int], learning_rate: float, baseline_decay: float, entropy: float) -> None:
        owner = type(self).__name__
        self.sizes = _check_sizes(owner, sizes)
        self.optimizer = Adam(check_positive(owner, "learning_rate", learning_rate))
        self.baseline_decay = check_unit_interval(owner, "baseline_decay", baseline_decay, closed_right=True)
        self.entropy = check_positive(owner, "entropy", entropy, allow_zero=True)
        self.baseline: float | None = None
        self.params: list[np.ndarray] = []

    @property
    def learning_rate(self) -> float:
        """The Adam step size."""
        return self.optimizer.learning_rate

    # -- checks -----------------------------------------------------------------------------
    def _check_index(self, i: Any) -> int:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < len(self.sizes):
            raise ValueError(f"{type(self).__name__}: decision index must be an int in "
                             f"[0, {len(self.sizes) - 1}], got {i!r}")
        return int(i)

    def _check_option(self, i: int, option: Any, what: str = "option") -> int:
        if isinstance(option, bool) or not isinstance(option, numbers.Integral) or not 0 <= option < self.sizes[i]:
            raise ValueError(f"{type(self).__name__}: {what} of decision {i} must be an int in "
                             f"[0, {self.sizes[i] - 1}], got {option!r}")
        return int(option)

    # -- state ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Parameters, baseline and Adam state (copies), for a checkpoint."""
        return {"params": [w.copy() for w in self.params], "baseline": self.baseline,
                "optimizer": self.optimizer.state()}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned, in place."""
        params = [np.array(w, dtype=float) for w in state["params"]]
        if [w.shape for w in params] != [w.shape for w in self.params]:
            raise ValueError(f"{type(self).__name__}.load_state: the saved parameters have other shapes")
        self.params = params
        self.baseline = state["baseline"]
        self.optimizer.load_state(state["optimizer"])

    # -- sampling ---------------------------------------------------------------------------
    def probabilities(self, i: int, prefix: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, i: int, prefix: Any, rng: np.random.Generator) -> int:
        """Option index for decision ``i`` given the prefix (the option indices of decisions
        ``0..i-1``; the table controller also takes the previous option alone, or None for i=0)."""
        p = self.probabilities(i, prefix)
        return int(rng.choice(len(p), p=p))

    def other_probabilities(self, i: int, prefix: Any, old: int, explore: float = 0.0) -> np.ndarray:
        """The distribution a mutation of decision ``i`` draws from: the controller's, without
        ``old``, renormalised, mixed with weight ``explore`` with the uniform distribution over
        the other options (``explore=1`` is evolution's uniform resampling). A decision with one
        option keeps it."""
        p = self.probabilities(i, prefix).copy()
        old = self._check_option(i, old, "old option")
        if p.size == 1:
            return p
        others = (np.arange(p.size) != old) / (p.size - 1.0)
        p[old] = 0.0
        total = p.sum()
        p = p / total if total > 0 else others
        return (1.0 - explore) * p + explore * others if explore else p

    def sample_other(self, i: int, prefix: Any, old: int, rng: np.random.Generator, explore: float = 0.0) -> int:
        """Like :meth:`sample`, but never ``old`` (a mutation always changes the decision); see
        :meth:`other_probabilities`."""
        p = self.other_probabilities(i, prefix, old, explore)
        return int(rng.choice(p.size, p=p))

    def sample_sequence(self, rng: np.random.Generator) -> list[int]:
        """A whole sequence of option indices, decision by decision."""
        out: list[int] = []
        for i in range(len(self.sizes)):
            out.append(self.sample(i, out, rng))
        return out

    # -- learning ---------------------------------------------------------------------------
    def reinforce(self, sequences: Sequence[Sequence[int]], masks: Sequence[Sequence[bool]],
                  rewards: Sequence[float]) -> None:
        """One REINFORCE step on the decisions where ``mask`` is true (the ones the controller chose).

        Advantage = reward - moving-average baseline; the update ascends
        ``advantage * grad log pi(decision | prefix)`` with Adam.
        """
        rewards = np.asarray(rewards, dtype=float)
        if self.baseline is None:
            self.baseline = float(rewards.mean())
        advantages = rewards - self.baseline
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * float(rewards.mean())
        self._step(sequences, masks, advantages)

    def imitate(self, sequences: Sequence[Sequence[int]], masks: Sequence[Sequence[bool]] | None = None) -> None:
        """One maximum-likelihood step towards ``sequences`` (priority-queue training: the best seen)."""
        if masks is None:
            masks = [[True] * len(self.sizes)] * len(sequences)
        self._step(sequences, masks, np.ones(len(sequences)))

    def _step(self, sequences: Sequence[Sequence[int]], masks: Sequence[Sequence[bool]], advantages: Any) -> None:
        if len(sequences) == 0:
            return
        seqs = np.asarray(sequences, dtype=int).reshape(len(sequences), len(self.sizes))
        masks = np.asarray(masks, dtype=float).reshape(seqs.shape)
        adv = np.asarray(advantages, dtype=float)
        grads = self._gradients(seqs, masks, adv)
        self.params = self.optimizer.step(self.params, [g / len(seqs) for g in grads])

    @staticmethod
    def _logit_gradient(p: np.ndarray, choice: np.ndarray, weight: np.ndarray, entropy: float,
                        mask: np.ndarray) -> np.ndarray:
        """Ascent direction on the logits, per row: ``weight * (onehot - p)`` + entropy bonus."""
        g = -p.copy()
        g[np.arange(len(choice)), choice] += 1.0
        g *= weight[:, None]
        if entropy:
            logp = np.log(p + 1e-12)
            g += entropy * (-p * (logp - np.sum(p * logp, axis=1, keepdims=True)))
        return g * mask[:, None]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class TableController(_Controller):
    """Logits of decision ``i`` given decision ``i - 1`` only, one row per previous option.

    ``params[i][p]`` are the logits of decision ``i`` given that decision ``i - 1`` took option
    ``p`` (decision 0 has a single row). All start at zero: the uniform policy.

    Args:
        sizes: Number of options of each decision.
        learning_rate: Adam step size (> 0).
        baseline_decay: Decay of the moving-average REINFORCE baseline, in [0, 1].
        entropy: Weight (>= 0) of an entropy bonus that keeps the policy from collapsing early.

    Raises:
        ValueError: For empty or non-positive ``sizes``, or a value out of range (named).
    """

    def __init__(self, sizes: Sequence[int], learning_rate: float = 0.1, baseline_decay: float = 0.9,
                 entropy: float = 0.0) -> None:
        super().__init__(sizes, learning_rate, baseline_decay, entropy)
        self.params = [np.zeros((1 if i == 0 else self.sizes[i - 1], k)) for i, k in enumerate(self.sizes)]

    @property
    def logits(self) -> list[np.ndarray]:
        """The logit tables (``params``)."""
        return self.params

    def _row(self, i: int, prefix: Any) -> int:
        if i == 0:
            return 0
        previous = prefix
        if prefix is None or not isinstance(prefix, numbers.Integral):
            if prefix is None or len(prefix) < i:
                raise ValueError(f"TableController: decision {i} needs the previous decision's option, "
                                 f"got prefix {prefix!r}")
            previous = prefix[i - 1]
        return self._check_option(i - 1, previous, "previous option")

    def probabilities(self, i: int, prefix: Any) -> np.ndarray:
        """Distribution of decision ``i`` given the prefix (or the previous option index)."""
        i = self._check_index(i)
        return _softmax(self.params[i][self._row(i, prefix)])

    def _gradients(self, seqs: np.ndarray, masks: np.ndarray, adv: np.ndarray) -> list[np.ndarray]:
        grads = [np.zeros_like(w) for w in self.params]
        for i in range(len(self.sizes)):
            rows = np.zeros(len(seqs), dtype=int) if i == 0 else seqs[:, i - 1]
            p = _softmax(self.params[i][rows])
            g = self._logit_gradient(p, seqs[:, i], adv, self.entropy, masks[:, i])
            np.add.at(grads[i], rows, g)
        return grads


class RecurrentController(_Controller):
    """Conditions every decision on all previous ones through a recurrent state (numpy).

    The model is NADE's (Larochelle & Murray 2011) autoregressive network: the state before
    decision ``i`` is ``s_i = c + sum_{j<i} E_j[a_j]`` (a linear recurrence ``s_{i+1} = s_i +
    E_i[a_i]`` over per-decision option embeddings), ``h_i = tanh(s_i)``, and the logits of
    decision ``i`` are ``U_i h_i + b_i``. ``U`` and ``b`` start at zero, so the policy starts
    uniform (Evo-NAS starts as pure evolution); ``E`` starts random (fixed ``init_seed``).

    Why numpy and not the paper's Keras LSTM: the search spaces here have tens of decisions and
    batches of ten, where a Keras model spends its time in per-call overhead (a ``predict`` per
    sampled decision), and ``import deapnn`` must stay free of TensorFlow. NADE's recurrence
    has an exact, cheap backward pass (a suffix sum), so one update is a few numpy operations
    per decision. It is as expressive as needed for the benchmarks: it learns the synthetic
    tasks whose rewards couple decisions far apart in the sequence (see
    ``benchmarks/evonas_synthetic.py --variant far``), where :class:`TableController`, which sees
    only the previous decision, cannot represent the optimum's conditionals. An LSTM was not
    built and timed against it.

    Args:
        sizes: Number of options of each decision.
        hidden: Width of the recurrent state (an int >= 1).
        learning_rate: Adam step size (> 0).
        baseline_decay: Decay of the moving-average REINFORCE baseline, in [0, 1].
        entropy: Weight (>= 0) of an entropy bonus.
        init_scale: Standard deviation of the initial embeddings (>= 0).
        init_seed: Seed of the embeddings' initialisation.

    Raises:
        ValueError: For empty or non-positive ``sizes``, or a value out of range (named).
    """

    def __init__(self, sizes: Sequence[int], hidden: int = 32, learning_rate: float = 0.05,
                 baseline_decay: float = 0.9, entropy: float = 0.0, init_scale: float = 0.5,
                 init_seed: int = 0) -> None:
        super().__init__(sizes, learning_rate, baseline_decay, entropy)
        if isinstance(hidden, bool) or not isinstance(hidden, numbers.Integral) or hidden < 1:
            raise ValueError(f"RecurrentController: hidden must be an int >= 1, got {hidden!r}")
        init_scale = check_positive("RecurrentController", "init_scale", init_scale, allow_zero=True)
        self.hidden = int(hidden)
        init = np.random.default_rng(init_seed)
        # params: [c, E_0..E_{n-1}, U_0..U_{n-1}, b_0..b_{n-1}]
        self.params = ([np.zeros(self.hidden)]
                       + [init.normal(0.0, init_scale, (k, self.hidden)) for k in self.sizes]
                       + [np.zeros((k, self.hidden)) for k in self.sizes]
                       + [np.zeros(k) for k in self.sizes])

    def _parts(self) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        n = len(self.sizes)
        p = self.params
        return p[0], p[1:1 + n], p[1 + n:1 + 2 * n], p[1 + 2 * n:]

    def probabilities(self, i: int, prefix: Any) -> np.ndarray:
        """Distribution of decision ``i`` given ``prefix``, the option indices of decisions
        ``0..i-1`` (a longer sequence is cut to its first ``i``)."""
        i = self._check_index(i)
        if i and (prefix is None or isinstance(prefix, numbers.Integral) or len(prefix) < i):
            raise ValueError(f"RecurrentController: decision {i} needs the options of decisions 0..{i - 1}, "
                             f"got prefix {prefix!r}")
        c, E, U, b = self._parts()
        s = c.copy()
        for j in range(i):
            s += E[j][self._check_option(j, prefix[j], "prefix option")]
        return _softmax(U[i] @ np.tanh(s) + b[i])

    def sample_sequence(self, rng: np.random.Generator) -> list[int]:
        """A whole sequence, carrying the recurrent state forward (the same draws and sums as
        deciding one decision at a time with :meth:`sample`)."""
        c, E, U, b = self._parts()
        s = c.copy()
        out: list[int] = []
        for i in range(len(self.sizes)):
            p = _softmax(U[i] @ np.tanh(s) + b[i])
            out.append(int(rng.choice(len(p), p=p)))
            s += E[i][out[-1]]
        return out

    def _gradients(self, seqs: np.ndarray, masks: np.ndarray, adv: np.ndarray) -> list[np.ndarray]:
        n = len(self.sizes)
        c, E, U, b = self._parts()
        emb = np.stack([E[j][seqs[:, j]] for j in range(n)], axis=1)  # (B, n, H)
        s = c + np.concatenate([np.zeros_like(emb[:, :1]), np.cumsum(emb, axis=1)[:, :-1]], axis=1)
        h = np.tanh(s)
        dE, dU, db = [np.zeros_like(w) for w in E], [np.zeros_like(w) for w in U], [np.zeros_like(w) for w in b]
        ds = np.zeros_like(s)
        for i in range(n):
            p = _softmax(h[:, i] @ U[i].T + b[i])
            g = self._logit_gradient(p, seqs[:, i], adv, self.entropy, masks[:, i])  # (B, K)
            dU[i] = g.T @ h[:, i]
            db[i] = g.sum(axis=0)
            ds[:, i] = (g @ U[i]) * (1.0 - h[:, i] ** 2)
        dc = ds.sum(axis=(0, 1))
        later = np.cumsum(ds[:, ::-1], axis=1)[:, ::-1]  # later[:, j] = sum_{i >= j} ds[:, i]
        for j in range(n - 1):
            np.add.at(dE[j], seqs[:, j], later[:, j + 1])
        return [dc] + dE + dU + db


#: ``controller=`` names and their classes.
CONTROLLERS = {"table": TableController, "recurrent": RecurrentController}


def make_controller(kind: str, sizes: Sequence[int], **kwargs: Any) -> _Controller:
    """A controller by name (:data:`CONTROLLERS`), built with ``kwargs``.

    Raises:
        ValueError: For an unknown name.
    """
    if kind not in CONTROLLERS:
        raise ValueError(f"controller must be one of {tuple(CONTROLLERS)}, got {kind!r}")
    return CONTROLLERS[kind](sizes, **kwargs)
