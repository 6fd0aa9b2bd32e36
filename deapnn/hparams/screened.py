"""Surrogate-screened mutation as a plain DEAP operator: :func:`mut_screened`.

Pre-screening (surrogate-assisted evolution, e.g. Jin 2011, "Surrogate-assisted evolutionary
computation: recent advances and future challenges"): instead of evaluating the first mutant of a
parent, draw ``k`` candidate mutants, and keep the one a cheap model of the fitness predicts
best. Only the kept child is evaluated, so the model spends no evaluations; it learns which gene
values are good from every genome the run has evaluated so far.

Here that mutation is an ordinary ``toolbox.mutate`` (``individual -> (individual,)``), so DEAP's
``eaSimple``, ``eaMuPlusLambda`` or :func:`deapnn.evolve` run it unchanged::

    toolbox = deapnn.make_toolbox(space, evaluate, mutate="screened")   # or, by hand:
    screen = ScreenedMutation(space, k=16)
    toolbox.register("mutate", mut_screened, screen=screen)
    screen.bind(toolbox.cache)                   # make_toolbox does this

Where the data come from: the toolbox's :class:`~deapnn.core.cache.EvaluationCache`. Its
``records`` hold the fitness of every genome the run has evaluated (keyed by the genome's
canonical key, so genomes that build the same network count once), written by DEAP's algorithm
through ``toolbox.map`` before the next generation's variation. At each call the model is fitted
again on those records (the first fitness value, with its DEAP weight, so larger is better);
failed evaluations count as the worst value seen.

The model: Bayesian ridge regression on the genes' one-hot values (a categorical gene gets one
column per value and one for a value outside the gene, e.g. the ``None`` of a canonical key; a
numeric gene its position in ``[0, 1]``, in logs for a log range, and its square) -- an additive
per-gene-value model whose effects are shrunk towards the mean. The targets are the ranks of the
observed fitnesses, as normal scores (a few failed networks then do not dominate the fit). Each
call draws one set of weights from the posterior, scaled by ``explore`` (Thompson sampling), and
ranks the candidates by it: with few data the choice is nearly random, and as evidence
accumulates it concentrates on the gene values that paid off.

``model="gp"`` replaces the ridge by a Gaussian process on the same targets (exact, in numpy:
the data are the run's evaluations, a few hundred at most) with a categorical kernel of ``d``, the
number of genes (of ``G``) where two genomes differ (a numeric gene adds half the squared distance
of its features instead of 0 or 1) and ``m = G - d``: ``additive * m / G + pairwise * m (m - 1) /
(G (G - 1)) + (1 - additive - pairwise) * exp(-d / lengthscale)``. The first term is an additive
model of the gene values like the ridge's (``additive=1`` is a Bayesian ridge whose effects have
prior variance ``1 / G``), the second adds pairwise interactions (one effect per pair of gene
values), the third lets genomes close to each other share their fitness (all orders);
``noise`` is the observation noise variance of the unit-variance targets. Its Thompson draw is
joint over the candidates. ``acquisition="ucb"`` (posterior mean + ``explore`` x standard
deviation) or ``"ei"`` (expected improvement over the best target, the spread scaled by
``explore``) rank the candidates without a random draw, for either model.

On the tabulated digits benchmark (``benchmarks/tabulated.py``), a GP with ``additive=1``,
``noise=1`` (the main effects, shrunk more than the ridge's) was the best setting on the tuning
seeds; the pairwise and local kernels learn interactions the additive models cannot (see the
tests) but did not reach a top network sooner there.

Candidates a cache has seen (evaluated or reserved) are skipped, so with ``novel=True`` the kept
child is normally new already.

Checkpoints: the model is refitted from the cache at every call, so the only state is a call
counter; :class:`ScreenedMutation` still has ``state()``/``load_state()`` so that
:func:`deapnn.evolve` checkpoints it like any stateful operator, and a resumed run (cache and
RNG restored) continues exactly.

Randomness: Python's :mod:`random` module, as DEAP's operators (seed it with
:func:`deapnn.seed`): the candidate mutants and the Thompson draw (``ucb`` and ``ei`` draw
nothing).
"""

from __future__ import annotations

import copy
import math
import numbers
import random
from statistics import NormalDist
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from deapnn.hparams import operators
from deapnn.hparams.space import Choice, FloatRange, IntRange, SearchSpace

__all__ = ["ScreenedMutation", "mut_screened", "MODELS", "ACQUISITIONS"]

#: The surrogates :class:`ScreenedMutation` offers (its ``model``).
MODELS = ("ridge", "gp")

#: How :class:`ScreenedMutation` ranks candidates (its ``acquisition``).
ACQUISITIONS = ("thompson", "ucb", "ei")


class _Encoder:
    """Genome keys (canonical value tuples) as feature rows for the surrogate."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.slices: list[tuple[int, int]] = []
        width = 0
        for gene in space.genes:
            n = gene.size + 1 if isinstance(gene, Choice) else 3  # values + other / z, z^2, absent
            self.slices.append((width, width + n))
            width += n
        self.width = width
        self._rows: dict[Hashable, np.ndarray] = {}

    def fits(self, key: Any) -> bool:
        """Whether ``key`` is a genome key of this space (not, say, a multi-fidelity rung key)."""
        return (isinstance(key, tuple) and len(key) == len(self.space)
                and not (len(key) == 3 and key[1] == "rung" and isinstance(key[0], tuple)))

    def row(self, key: tuple[Any, ...]) -> np.ndarray:
        found = self._rows.get(key)
        if found is not None:
            return found
        x = np.zeros(self.width)
        for (start, _), gene, value in zip(self.slices, self.space.genes, key):
            if isinstance(gene, Choice):
                try:
                    x[start + gene.index(value)] = 1.0
                except ValueError:  # e.g. None for a gene a canonical key marks unused
                    x[start + gene.size] = 1.0
            elif value is None or not isinstance(value, numbers.Real):
                x[start + 2] = 1.0
            else:
                z = _unit(gene, float(value))
                x[start], x[start + 1] = z, z * z
        if len(self._rows) < 100_000:
            self._rows[key] = x
        return x


def _unit(gene: IntRange | FloatRange, value: float) -> float:
    """``value``'s position in ``[0, 1]`` along ``gene`` (in logs for a log range)."""
    low, high = float(gene.low), float(gene.high)
    if isinstance(gene, FloatRange) and gene.log and value > 0:
        value, low, high = math.log(value), math.log(low), math.log(high)
    z = (value - low) / (high - low) if high > low else 0.5
    return min(1.0, max(0.0, z)) if math.isfinite(z) else 0.5


def _normal_scores(values: np.ndarray) -> np.ndarray:
    """Ranks of ``values`` (ties averaged) as standard normal quantiles, larger is better."""
    n = len(values)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(n)
    ranks[order] = np.arange(n, dtype=float)
    for v in np.unique(values):  # average tied ranks: equal fitness, equal target
        tied = values == v
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    inv = NormalDist().inv_cdf
    return np.array([inv((r + 0.5) / n) for r in ranks])


class ScreenedMutation:
    """The settings and the surrogate of :func:`mut_screened`. Calling it is :func:`mut_screened`
    with this screen.

    Args:
        space: The search space (categorical, integer and float genes are all modelled).
        k: Candidate mutants drawn per call (an int >= 1; 1 is the base mutation alone).
        mutate: The base mutation that makes each candidate from a copy of the parent: a
            function ``individual -> (individual,)`` in DEAP's shape (use
            ``functools.partial`` for knobs); default
            :func:`~deapnn.hparams.operators.mut_one_gene`.
        explore: Scale of the posterior draw (a finite number >= 0): 1 is Thompson sampling,
            0 takes the posterior mean (greedy), larger explores more. On the tabulated digits
            benchmark (seeds 1000-1099) 0.25-0.5 did better than 1.
        alpha: Ridge penalty (prior precision) of the gene-value effects (a finite number > 0);
            larger shrinks them more towards the mean.
        min_data: Evaluated genomes needed before the model screens (an int >= 0); below it the
            first novel candidate is kept (the base mutation alone).
        cache: The :class:`~deapnn.core.cache.EvaluationCache` whose records are the data (or
            None, then :meth:`bind` it; :func:`~deapnn.hparams.toolbox.make_toolbox` binds
            ``toolbox.cache``).
        model: The surrogate: ``"ridge"`` (Bayesian ridge on one-hot gene values, additive) or
            ``"gp"`` (Gaussian process, categorical kernel; see the module docstring).
        lengthscale: ``model="gp"``: the local kernel ``exp(-d / lengthscale)``, ``d`` the
            number of differing genes (a finite number > 0).
        noise: ``model="gp"``: observation noise variance of the rank targets, whose prior
            variance is 1 (a finite number > 0).
        additive: ``model="gp"``: weight in ``[0, 1]`` of the additive kernel ``m / G`` (``m``
            of the ``G`` genes agree; 1: main effects only).
        pairwise: ``model="gp"``: weight (>= 0, ``additive + pairwise <= 1``) of the pairwise
            kernel ``m (m - 1) / (G (G - 1))``; the rest, ``1 - additive - pairwise``, is the
            local kernel's.
        acquisition: How candidates are ranked: ``"thompson"`` (one posterior draw, its spread
            scaled by ``explore``), ``"ucb"`` (mean + ``explore`` x sd) or ``"ei"`` (expected
            improvement over the best target, sd scaled by ``explore``).

    Attributes:
        calls: Number of :func:`mut_screened` calls so far.
        screened: Calls where the model chose among two or more novel candidates.

    Raises:
        TypeError: If ``space`` is not a SearchSpace, ``mutate`` is not callable, or a knob has
            the wrong type (named).
        ValueError: For a knob out of range (named, with its value).
    """

    def __init__(self, space: SearchSpace, k: int = 16,
                 mutate: Callable[..., Any] = operators.mut_one_gene, explore: float = 0.5,
                 alpha: float = 1.0, min_data: int = 2, cache: Any = None, model: str = "ridge",
                 lengthscale: float = 2.0, noise: float = 0.5, additive: float = 0.0,
                 pairwise: float = 0.0, acquisition: str = "thompson") -> None:
        if not isinstance(space, SearchSpace):
            raise TypeError(f"space must be a SearchSpace, got {space!r}")
        self.space = space
        self.k = _check_int("ScreenedMutation k", k, 1)
        if not callable(mutate):
            raise TypeError(f"ScreenedMutation mutate must be callable (individual -> (individual,)), "
                            f"got {mutate!r}")
        self.mutate = mutate
        self.explore = _check_real("ScreenedMutation explore", explore, 0.0, inclusive=True)
        self.alpha = _check_real("ScreenedMutation alpha", alpha, 0.0, inclusive=False)
        self.min_data = _check_int("ScreenedMutation min_data", min_data, 0)
        self.model = _check_choice("ScreenedMutation model", model, MODELS)
        self.acquisition = _check_choice("ScreenedMutation acquisition", acquisition, ACQUISITIONS)
        self.lengthscale = _check_real("ScreenedMutation lengthscale", lengthscale, 0.0, inclusive=False)
        self.noise = _check_real("ScreenedMutation noise", noise, 0.0, inclusive=False)
        self.additive = _check_real("ScreenedMutation additive", additive, 0.0, inclusive=True)
        if self.additive > 1.0:
            raise ValueError(f"ScreenedMutation additive must be in [0, 1], got {additive!r}")
        self.pairwise = _check_real("ScreenedMutation pairwise", pairwise, 0.0, inclusive=True)
        if self.additive + self.pairwise > 1.0:
            raise ValueError(f"ScreenedMutation additive + pairwise must be <= 1, got {additive!r} + "
                             f"{pairwise!r}")
        self.cache = None
        if cache is not None:
            self.bind(cache)
        self.calls = 0
        self.screened = 0
        self._encoder = _Encoder(space)

    def bind(self, cache: Any) -> None:
        """Use ``cache`` (an :class:`~deapnn.core.cache.EvaluationCache`: ``records``, ``key``,
        ``seen``) as the data and the novelty check.

        Raises:
            TypeError: If ``cache`` lacks ``records``, ``key`` or ``seen``.
        """
        if not (isinstance(getattr(cache, "records", None), dict) and callable(getattr(cache, "key", None))
                and callable(getattr(cache, "seen", None))):
            raise TypeError(f"ScreenedMutation needs an EvaluationCache (records, key, seen), got {cache!r}")
        self.cache = cache

    def __call__(self, individual: Any) -> tuple[Any]:
        return mut_screened(individual, self)

    # -- the surrogate ------------------------------------------------------------------------
    def data(self, weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)``: the feature rows of every evaluated genome in the cache and its first
        fitness value times ``weight`` (its DEAP weight: larger is better); failures and other
        non-finite values get the worst finite value (or 0 when there is none)."""
        keys, values = [], []
        for key, fitness in self.cache.records.items():
            if self._encoder.fits(key) and len(fitness):
                keys.append(key)
                values.append(float(fitness[0]) * weight)
        if not keys:
            return np.zeros((0, self._encoder.width)), np.zeros(0)
        y = np.array(values, dtype=float)
        finite = np.isfinite(y)
        y = np.where(finite, y, y[finite].min() if finite.any() else 0.0)
        return np.stack([self._encoder.row(k) for k in keys]), y

    def draw(self, weight: float = 1.0) -> np.ndarray | None:
        """One set of gene-value effects from the posterior (``explore`` times its spread), or
        None while fewer than ``max(min_data, 2)`` genomes are evaluated. Draws
        ``len(effects)`` ``random.gauss`` numbers when ``explore > 0``."""
        X, y = self.data(weight)
        if len(y) < max(self.min_data, 2):
            return None
        mean, cov = self._ridge_posterior(X, _normal_scores(y))
        if self.explore == 0:
            return mean
        chol = np.linalg.cholesky((cov + cov.T) / 2.0)
        z = np.array([random.gauss(0.0, 1.0) for _ in range(len(mean))])
        return mean + self.explore * (chol @ z)

    def predict(self, keys: Sequence[tuple[Any, ...]], effects: np.ndarray) -> np.ndarray:
        """Predicted (rank-scale) fitness of genome ``keys`` under ``effects``."""
        return np.array([float(self._encoder.row(k) @ effects) for k in keys])

    def score(self, keys: Sequence[tuple[Any, ...]], weight: float = 1.0) -> np.ndarray | None:
        """The acquisition score of genome ``keys`` (larger is better) under the model fitted on
        the cache's records; None while fewer than ``max(min_data, 2)`` genomes are evaluated.

        ``acquisition="thompson"``: one posterior draw (``explore`` times its spread) of the
        rank-scale fitness -- ``model="ridge"``: :meth:`draw` then :meth:`predict`
        (``len(effects)`` ``random.gauss`` numbers); ``model="gp"``: a joint draw over all
        ``keys`` (``len(keys)`` ``random.gauss`` numbers when ``explore > 0``). ``"ucb"``: mean +
        ``explore`` x sd; ``"ei"``: expected improvement over the best target, sd scaled by
        ``explore`` (neither draws random numbers).
        """
        if self.model == "ridge" and self.acquisition == "thompson":
            effects = self.draw(weight)
            return None if effects is None else self.predict(keys, effects)
        X, y = self.data(weight)
        if len(y) < max(self.min_data, 2):
            return None
        t = _normal_scores(y)
        C = np.stack([self._encoder.row(k) for k in keys])
        if self.model == "gp" and self.acquisition == "thompson":
            return self._gp_draw(X, t, C)
        mean, sd = self._ridge_marginals(X, t, C) if self.model == "ridge" else self._gp_marginals(X, t, C)
        sd = self.explore * sd
        if self.acquisition == "ucb":
            return mean + sd
        gain = mean - t.max()  # expected improvement over the best target
        z = np.divide(gain, sd, out=np.where(gain > 0, np.inf, -np.inf), where=sd > 0)
        pdf = np.exp(-0.5 * np.minimum(z * z, 1e6)) / math.sqrt(2 * math.pi)
        cdf = np.array([NormalDist().cdf(v) if math.isfinite(v) else float(v > 0) for v in z])
        return gain * cdf + sd * pdf

    def _ridge_posterior(self, X: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ridge posterior of the gene-value effects given targets ``t`` at rows ``X``: its
        mean and covariance."""
        cov = np.linalg.inv(X.T @ X + self.alpha * np.eye(X.shape[1]))
        return cov @ (X.T @ t), cov

    def _ridge_marginals(self, X: np.ndarray, t: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ridge posterior's mean and standard deviation of the fitness at rows ``C``."""
        effects, cov = self._ridge_posterior(X, t)
        return C @ effects, np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", C, cov, C), 0.0))

    def _gp_posterior(self, X: np.ndarray, t: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, V)`` of the GP posterior at rows ``C`` given targets ``t`` at rows ``X``: the
        posterior covariance there is ``kernel(C, C) - V.T @ V``."""
        L = np.linalg.cholesky(self._kernel(X, X) + self.noise * np.eye(len(X)))
        Kc = self._kernel(X, C)
        mean = Kc.T @ np.linalg.solve(L.T, np.linalg.solve(L, t))
        return mean, np.linalg.solve(L, Kc)

    def _gp_marginals(self, X: np.ndarray, t: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The GP posterior's mean and standard deviation at rows ``C``."""
        mean, V = self._gp_posterior(X, t, C)
        var = np.diag(self._kernel(C, C)) - np.sum(V * V, 0)
        return mean, np.sqrt(np.maximum(var, 0.0))

    def _kernel(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """``additive * m / G + pairwise * m (m - 1) / (G (G - 1)) + rest * exp(-d / lengthscale)``
        with ``G`` genes, ``d`` of them differing (half the squared distance of the one-hot rows),
        ``m = G - d`` agreeing, and ``rest = 1 - additive - pairwise``: main effects, pairwise
        interactions (the pairs of genes that agree) and a local all-order term."""
        d = 0.5 * (np.sum(A * A, 1)[:, None] + np.sum(B * B, 1)[None, :] - 2.0 * A @ B.T)
        d = np.maximum(d, 0.0)
        G = float(len(self.space))
        m = G - d
        rest = 1.0 - self.additive - self.pairwise
        k = np.exp(-d / self.lengthscale) * rest if rest > 0 else np.zeros_like(d)
        if self.additive:
            k = k + self.additive * m / G
        if self.pairwise and G > 1:
            k = k + self.pairwise * m * (m - 1.0) / (G * (G - 1.0))
        return k

    def _gp_draw(self, X: np.ndarray, t: np.ndarray, C: np.ndarray) -> np.ndarray:
        """A joint posterior draw at rows ``C`` of a zero-mean, unit-variance GP with observation
        noise variance ``noise``, conditioned on targets ``t`` at rows ``X``."""
        mean, V = self._gp_posterior(X, t, C)
        if self.explore == 0:
            return mean
        cov = self._kernel(C, C) - V.T @ V
        cov = (cov + cov.T) / 2.0 + 1e-8 * np.eye(len(C))
        w, U = np.linalg.eigh(cov)  # robust where Cholesky fails (duplicates, near-singular)
        root = U * np.sqrt(np.maximum(w, 0.0))
        z = np.array([random.gauss(0.0, 1.0) for _ in range(len(C))])
        return mean + self.explore * (root @ z)

    # -- state --------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The call counters (the model is refitted from the cache, which the run saves)."""
        return {"calls": self.calls, "screened": self.screened}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned, in place."""
        self.calls = int(state["calls"])
        self.screened = int(state["screened"])

    def __getstate__(self) -> dict[str, Any]:  # the encoded rows are a cache: not pickled
        d = dict(self.__dict__)
        d["_encoder"] = None
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)
        self._encoder = _Encoder(self.space)

    def __repr__(self) -> str:
        name = getattr(self.mutate, "__name__", None) or repr(self.mutate)
        model = (f"alpha={self.alpha}" if self.model == "ridge" else
                 f"lengthscale={self.lengthscale}, noise={self.noise}, additive={self.additive}, "
                 f"pairwise={self.pairwise}")
        return (f"ScreenedMutation(k={self.k}, mutate={name}, model={self.model!r}, {model}, "
                f"acquisition={self.acquisition!r}, explore={self.explore}, min_data={self.min_data}, "
                f"calls={self.calls})")


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of the strings ``choices``; else TypeError (not a str) or ValueError,
    naming ``name`` and the value."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str ({' or '.join(map(repr, choices))}), got {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _check_real(name: str, value: Any, low: float, inclusive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    ok = math.isfinite(value) and (value >= low if inclusive else value > low)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>=' if inclusive else '>'} {low}, got {value!r}")
    return float(value)


def mut_screened(individual: Any, screen: ScreenedMutation) -> tuple[Any]:
    """Mutate ``individual`` into the best of ``screen.k`` candidate mutants, as ``screen``'s
    surrogate predicts it (see the module docstring).

    Each candidate is a copy of ``individual`` changed by ``screen.mutate``; candidates that
    ``screen.cache`` has seen (evaluated or reserved) and repeats are skipped (up to ``4 * k``
    mutants are drawn to find ``k`` novel ones). One posterior draw scores them all; the best is
    written into ``individual`` in place. With no novel candidate the last mutant is kept (a
    :class:`~deapnn.hparams.toolbox.NovelChildren` decorator then makes it novel), and while the
    cache holds fewer than ``screen.min_data`` genomes the first novel one is. Every value
    written comes from the base mutation, so it stays inside its gene.

    Args:
        individual: A genome of ``screen.space`` (its fitness weights say which way is better).
        screen: The :class:`ScreenedMutation` with the settings and the bound cache.

    Returns:
        ``(individual,)``, changed in place.

    Raises:
        TypeError: If ``screen`` is not a :class:`ScreenedMutation`.
        ValueError: If ``screen`` has no cache bound.

    Randomness: Python's :mod:`random` -- the base mutation's draws for each candidate, then,
    when the model screens with Thompson sampling and ``explore > 0``, one ``random.gauss`` per
    model column (``model="ridge"``) or per candidate (``model="gp"``).
    """
    if not isinstance(screen, ScreenedMutation):
        raise TypeError(f"mut_screened needs screen=ScreenedMutation(space), got {screen!r}")
    cache = screen.cache
    if cache is None:
        raise ValueError("mut_screened: the ScreenedMutation has no cache; call screen.bind(toolbox.cache) "
                         "or build the toolbox with make_toolbox(..., mutate='screened')")
    screen.calls += 1
    candidates: list[list[Any]] = []
    keys: list[Hashable] = []
    last = None
    for _ in range(4 * screen.k):
        mutant = copy.deepcopy(individual)
        mutant, = screen.mutate(mutant)
        last = mutant
        key = cache.key(mutant)
        if key in keys or cache.seen(mutant):
            continue
        candidates.append(list(mutant))
        keys.append(key)
        if len(candidates) >= screen.k:
            break
    if not candidates:
        chosen = list(last)
    elif len(candidates) == 1:
        chosen = candidates[0]
    else:
        weights = getattr(getattr(individual, "fitness", None), "weights", None) or (1.0,)
        scores = screen.score(keys, float(weights[0]))
        if scores is None:
            chosen = candidates[0]
        else:
            screen.screened += 1
            chosen = candidates[int(np.argmax(scores))]
    individual[:] = chosen
    return (individual,)
