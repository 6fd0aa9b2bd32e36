"""Typed search spaces: the one place that knows what a gene means.

A :class:`SearchSpace` is an ordered mapping of gene names to typed genes:

* :class:`Choice` -- a categorical gene over strings, numbers, booleans or ``None``;
* :class:`IntRange` -- integers from ``low`` to ``high`` inclusive, on a ``step`` grid;
* :class:`FloatRange` -- reals in ``[low, high]``, sampled uniformly or on a log scale.

Genes validate themselves in their constructors and raise :class:`ValueError` or
:class:`TypeError` naming the bad value. The space samples genomes, maps them to a
canonical hashable key (so two genomes that mean the same network share one key),
enumerates finite spaces and converts to and from plain dicts and JSON.

Randomness: every ``sample``/``resample``/``perturb`` draws from the ``rng`` it is given, a
:class:`random.Random`; by default Python's global :mod:`random` module (seed it
with :func:`deapnn.core.seeding.seed`).
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import random as _random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, Union

Value = Union[str, int, float, bool, None]
Rng = Any  # random.Random or the random module itself

_SCALARS = (str, int, float, bool, type(None))


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps ``True`` apart from ``1`` and ``None`` apart from ``0``."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    return a == b


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _rng(rng: Rng | None) -> Rng:
    return _random if rng is None else rng


def _check_sigma(sigma: Any) -> None:
    if not _is_number(sigma):
        raise TypeError(f"perturb sigma must be a number, got {sigma!r}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"perturb sigma must be finite and > 0, got {sigma!r}")


def _step_index(i: int, n: int, sigma: float, rng: Rng) -> int:
    """A grid index other than ``i`` in ``range(n)``, ``max(1, round(|N(0, sigma * (n - 1))|))``
    places away in a random direction (the other direction where that one leaves the grid,
    clipped to the grid's end)."""
    if n < 2:
        return i
    r = _rng(rng)
    d = max(1, round(abs(r.gauss(0.0, sigma * (n - 1)))))
    direction = r.choice((-1, 1))
    if not 0 <= i + direction * d < n:
        direction = -direction
    return min(max(i + direction * d, 0), n - 1)


@dataclass(frozen=True, init=False)
class Choice:
    """A categorical gene.

    Args:
        values: The alternatives, in order: strings, numbers, booleans or ``None``.
            Non-empty, without duplicates.

    Raises:
        TypeError: If ``values`` is not a sequence or holds an unhashable or
            non-scalar value.
        ValueError: If ``values`` is empty, holds duplicates or a non-finite float.
    """

    values: tuple[Value, ...]

    def __init__(self, values: Iterable[Value]) -> None:
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise TypeError(f"Choice values must be a list or tuple, got {values!r}")
        values = tuple(values)
        if not values:
            raise ValueError("Choice needs at least one value, got an empty list")
        for v in values:
            try:
                hash(v)
            except TypeError:
                raise TypeError(f"Choice values must be hashable, got unhashable {v!r}") from None
            if not isinstance(v, _SCALARS):
                raise TypeError(
                    f"Choice values must be str, int, float, bool or None, got {v!r} ({type(v).__name__})"
                )
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"Choice values must be finite, got {v!r}")
        seen: list[Value] = []
        for v in values:
            if any(_same(v, s) for s in seen):
                raise ValueError(f"Choice values must be distinct, got {v!r} twice in {list(values)!r}")
            seen.append(v)
        object.__setattr__(self, "values", values)

    kind = "choice"
    numeric = False

    @property
    def size(self) -> int:
        return len(self.values)

    def grid(self) -> tuple[Value, ...]:
        return self.values

    def contains(self, value: Any) -> bool:
        return any(_same(value, v) for v in self.values)

    def index(self, value: Any) -> int:
        for i, v in enumerate(self.values):
            if _same(value, v):
                return i
        raise ValueError(f"{value!r} is not one of {list(self.values)!r}")

    def sample(self, rng: Rng | None = None) -> Value:
        return _rng(rng).choice(self.values)

    def resample(self, value: Value, rng: Rng | None = None) -> Value:
        """A random value other than ``value`` (``value`` itself if it is the only one)."""
        others = [v for v in self.values if not _same(v, value)]
        return _rng(rng).choice(others) if others else value

    @property
    def ordered(self) -> bool:
        """Whether the values are numbers in increasing order (neurons, batch sizes, dropout
        rates), so that neighbouring values are similar and :meth:`perturb` steps between them."""
        return all(_is_number(v) for v in self.values) and all(
            a < b for a, b in zip(self.values, self.values[1:]))

    def perturb(self, value: Value, sigma: float = 0.1, rng: Rng | None = None) -> Value:
        """A nearby value other than ``value``: an :attr:`ordered` choice moves
        ``max(1, round(|N(0, sigma * (size - 1))|))`` places along its values; any other
        choice has no notion of nearby and takes a different random value (:meth:`resample`).

        Raises:
            TypeError / ValueError: If ``sigma`` is not a finite number > 0.
        """
        _check_sigma(sigma)
        if not self.ordered:
            return self.resample(value, rng)
        return self.values[_step_index(self.index(value), self.size, sigma, rng)]

    def canonical(self, value: Value) -> Value:
        return self.values[self.index(value)]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "choice", "values": list(self.values)}


def _check_bound(name: str, x: Any, integer: bool) -> None:
    if integer:
        if isinstance(x, bool) or not isinstance(x, int):
            raise TypeError(f"IntRange {name} must be an int, got {x!r}")
    else:
        if not _is_number(x):
            raise TypeError(f"FloatRange {name} must be a number, got {x!r}")
        if not math.isfinite(x):
            raise ValueError(f"FloatRange {name} must be finite, got {x!r}")


@dataclass(frozen=True)
class IntRange:
    """An integer gene: ``low, low + step, ..., high`` (``high`` included).

    Raises:
        TypeError: If a bound or the step is not an int.
        ValueError: If ``low >= high``, ``step < 1`` or ``high - low`` is not a multiple of ``step``.
    """

    low: int
    high: int
    step: int = 1

    def __post_init__(self) -> None:
        _check_bound("low", self.low, True)
        _check_bound("high", self.high, True)
        _check_bound("step", self.step, True)
        if self.low >= self.high:
            raise ValueError(f"IntRange needs low < high, got low={self.low!r} >= high={self.high!r}")
        if self.step < 1:
            raise ValueError(f"IntRange step must be >= 1, got {self.step!r}")
        if (self.high - self.low) % self.step:
            raise ValueError(
                f"IntRange high - low must be a multiple of step, got low={self.low}, "
                f"high={self.high}, step={self.step}"
            )

    kind = "int"
    numeric = True

    @property
    def size(self) -> int:
        return (self.high - self.low) // self.step + 1

    def grid(self) -> tuple[int, ...]:
        return tuple(range(self.low, self.high + 1, self.step))

    def contains(self, value: Any) -> bool:
        return (
            _is_number(value)
            and float(value).is_integer()
            and self.low <= value <= self.high
            and (int(value) - self.low) % self.step == 0
        )

    def sample(self, rng: Rng | None = None) -> int:
        return _rng(rng).randrange(self.low, self.high + 1, self.step)

    def resample(self, value: int, rng: Rng | None = None) -> int:
        """A random grid value other than ``value``."""
        k = _rng(rng).randrange(self.size - 1)
        new = self.low + k * self.step
        return new + self.step if new >= value else new

    def perturb(self, value: int, sigma: float = 0.1, rng: Rng | None = None) -> int:
        """A nearby grid value other than ``value``: ``max(1, round(|N(0, sigma * (size - 1))|))``
        steps up or down.

        Raises:
            TypeError / ValueError: If ``sigma`` is not a finite number > 0.
        """
        _check_sigma(sigma)
        i = (self.snap(value) - self.low) // self.step
        return self.low + _step_index(i, self.size, sigma, rng) * self.step

    def snap(self, x: float) -> int:
        """The grid value nearest to ``x``, clipped to the range."""
        k = round((min(max(x, self.low), self.high) - self.low) / self.step)
        return self.low + int(k) * self.step

    def canonical(self, value: Any) -> int:
        return int(value)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, "step": self.step}


@dataclass(frozen=True)
class FloatRange:
    """A real gene in ``[low, high]``, uniform or (``log=True``) log-uniform.

    Raises:
        TypeError: If a bound is not a number.
        ValueError: If a bound is not finite, ``low >= high``, or ``log`` with ``low <= 0``.
    """

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        _check_bound("low", self.low, False)
        _check_bound("high", self.high, False)
        if self.low >= self.high:
            raise ValueError(f"FloatRange needs low < high, got low={self.low!r} >= high={self.high!r}")
        if self.log and self.low <= 0:
            raise ValueError(f"FloatRange with log=True needs low > 0, got low={self.low!r}")
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))

    kind = "float"
    numeric = True
    size = None

    def grid(self) -> tuple[float, ...]:
        raise ValueError(f"a FloatRange({self.low}, {self.high}) has no finite grid")

    def contains(self, value: Any) -> bool:
        return _is_number(value) and self.low <= value <= self.high

    def sample(self, rng: Rng | None = None) -> float:
        r = _rng(rng)
        if self.log:
            return self.snap(math.exp(r.uniform(math.log(self.low), math.log(self.high))))
        if math.isinf(self.high - self.low):  # a range wider than the largest float
            return self.snap(self._from_unit(r.random()))
        return r.uniform(self.low, self.high)

    def _from_unit(self, u: float) -> float:
        """The point a fraction ``u`` of the way from ``low`` to ``high``, computed in halves so
        that a range wider than the largest float (``FloatRange(-1e308, 1e308)``) never
        overflows to inf (or NaN)."""
        return 2.0 * (0.5 * self.low + u * (0.5 * self.high - 0.5 * self.low))

    def resample(self, value: float, rng: Rng | None = None) -> float:
        """A fresh random value (different from ``value`` with probability 1)."""
        return self.sample(rng)

    def perturb(self, value: float, sigma: float = 0.1, rng: Rng | None = None) -> float:
        """``value`` plus a Gaussian step of ``sigma`` times the range's width, measured in logs
        when ``log=True`` (so a learning rate moves by a factor, not an amount), reflected back
        into the range at its ends.

        Raises:
            TypeError / ValueError: If ``sigma`` is not a finite number > 0.
        """
        _check_sigma(sigma)
        scale = math.log if self.log else float
        lo, hi = scale(self.low), scale(self.high)
        if not self.log and not math.isfinite(8.0 * sigma * (hi - lo) + 2.0 * max(abs(lo), abs(hi))):
            # bounds or steps near the largest float: step in units of the range's width, so
            # no intermediate value overflows (inf - inf would write NaN into the genome)
            half = 0.5 * hi - 0.5 * lo
            u = (0.5 * self.snap(value) - 0.5 * lo) / half + _rng(rng).gauss(0.0, sigma)
            u = -u if u < 0.0 else 2.0 - u if u > 1.0 else u
            return self.snap(self._from_unit(min(max(u, 0.0), 1.0)))
        x = scale(self.snap(value)) + _rng(rng).gauss(0.0, sigma * (hi - lo))
        x = 2 * lo - x if x < lo else 2 * hi - x if x > hi else x
        return self.snap(math.exp(x) if self.log else x)

    def snap(self, x: float) -> float:
        return float(min(max(x, self.low), self.high))

    def canonical(self, value: Any) -> float:
        return float(value)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log}


Gene = Union[Choice, IntRange, FloatRange]
_GENE_TYPES = {"choice": Choice, "int": IntRange, "float": FloatRange}


def gene_from_dict(d: Mapping[str, Any]) -> Gene:
    """Rebuild a gene from :meth:`to_dict` output."""
    kind = d.get("type")
    if kind not in _GENE_TYPES:
        raise ValueError(f"unknown gene type {kind!r}; expected one of {sorted(_GENE_TYPES)}")
    args = {k: v for k, v in d.items() if k != "type"}
    return _GENE_TYPES[kind](**args)


def _callable_path(fn: Callable[..., Any]) -> str:
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or "<" in qualname:
        raise TypeError(f"canonical must be a module-level function (it must pickle), got {fn!r}")
    return f"{module}:{qualname}"


def _resolve(path: str) -> Callable[..., Any]:
    module, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class SearchSpace:
    """An ordered, validated mapping of gene names to genes.

    Args:
        genes: ``{name: gene}`` or a sequence of ``(name, gene)`` pairs. Plain lists and
            ``(low, high)`` tuples are accepted as shorthand, as in :meth:`from_gene_pool`.
        canonical: Optional module-level function ``dict -> dict`` that maps a genome's values
            to a canonical form, so that genomes meaning the same thing share one :meth:`key`
            (e.g. zero the dropout of an absent layer).

    Raises:
        TypeError: A gene name that is not a string, a gene of unknown type, or a
            ``canonical`` that is not a module-level callable.
        ValueError: No genes, a duplicate or empty name, or an invalid gene (the message
            names the gene).

    Example:
        >>> space = SearchSpace.from_gene_pool({"a": (-3, 3), "act": ["relu", "tanh"]})
        >>> space.names
        ('a', 'act')
    """

    def __init__(
        self,
        genes: Mapping[str, Any] | Sequence[tuple[str, Any]],
        canonical: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        pairs = list(genes.items()) if isinstance(genes, Mapping) else list(genes)
        if not pairs:
            raise ValueError("a SearchSpace needs at least one gene")
        self._genes: dict[str, Gene] = {}
        for item in pairs:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise TypeError(f"genes must be a mapping or (name, gene) pairs, got {item!r}")
            name, gene = item
            if not isinstance(name, str):
                raise TypeError(f"gene names must be strings, got {name!r}")
            if not name:
                raise ValueError("gene names must be non-empty strings")
            if name in self._genes:
                raise ValueError(f"duplicate gene name {name!r}")
            try:
                self._genes[name] = _as_gene(gene)
            except (TypeError, ValueError) as err:
                raise type(err)(f"gene {name!r}: {err}") from None
        if canonical is not None:
            if not callable(canonical):
                raise TypeError(f"canonical must be callable, got {canonical!r}")
            _callable_path(canonical)
        self.canonical = canonical
        self._index = {name: i for i, name in enumerate(self._genes)}

    @classmethod
    def from_gene_pool(cls, gene_pool: Mapping[str, Any], canonical: Callable | None = None) -> "SearchSpace":
        """Build a space from a seed-style ``gene_pool`` dict.

        Lists become :class:`Choice`; ``(low, high)`` tuples become continuous
        :class:`FloatRange` genes; gene objects are kept as they are.
        """
        if not isinstance(gene_pool, Mapping):
            raise TypeError(f"gene_pool must be a dict, got {gene_pool!r}")
        return cls(gene_pool, canonical=canonical)

    # -- mapping protocol ---------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._genes)

    @property
    def genes(self) -> tuple[Gene, ...]:
        return tuple(self._genes.values())

    def __getitem__(self, name: str) -> Gene:
        return self._genes[self._known(name)]

    def _known(self, name: str) -> str:
        """``name`` if the space has that gene, else a KeyError listing the genes."""
        if name not in self._genes:
            raise KeyError(f"no gene named {name!r}; genes are {list(self._genes)}")
        return name

    def __contains__(self, name: object) -> bool:
        return name in self._genes

    def __len__(self) -> int:
        return len(self._genes)

    def __iter__(self) -> Iterator[str]:
        return iter(self._genes)

    def items(self) -> Iterable[tuple[str, Gene]]:
        return self._genes.items()

    def index(self, name: str) -> int:
        """Position of gene ``name`` in a genome."""
        return self._index[self._known(name)]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SearchSpace)
            and list(self._genes.items()) == list(other._genes.items())
            and self.canonical is other.canonical
        )

    def __hash__(self) -> int:
        return hash(tuple(self._genes.items()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={g!r}" for n, g in self._genes.items())
        return f"SearchSpace({inner})"

    # -- values ----------------------------------------------------------------------------
    def as_dict(self, values: Mapping[str, Any] | Sequence[Any]) -> dict[str, Any]:
        """Values as a ``{name: value}`` dict, from a mapping or a sequence in gene order."""
        if isinstance(values, Mapping):
            return dict(values)
        values = list(values)
        if len(values) != len(self):
            raise ValueError(f"expected {len(self)} values for genes {list(self.names)}, got {len(values)}")
        return dict(zip(self.names, values))

    def validate(self, values: Mapping[str, Any] | Sequence[Any]) -> dict[str, Any]:
        """Check that ``values`` is a complete, in-range genome; return it as a dict.

        Raises:
            ValueError: Naming the missing, unknown or out-of-range gene and value.
        """
        d = self.as_dict(values)
        missing = [n for n in self.names if n not in d]
        if missing:
            raise ValueError(f"missing genes {missing}")
        extra = [n for n in d if n not in self._genes]
        if extra:
            raise ValueError(f"unknown genes {extra}; genes are {list(self.names)}")
        for name, gene in self._genes.items():
            if not gene.contains(d[name]):
                raise ValueError(f"gene {name!r}: value {d[name]!r} is not in {gene!r}")
        return d

    def contains(self, values: Mapping[str, Any] | Sequence[Any]) -> bool:
        try:
            self.validate(values)
        except ValueError:
            return False
        return True

    def sample(self, rng: Rng | None = None) -> dict[str, Any]:
        """A random genome as a dict; draws from ``rng`` (default: the ``random`` module)."""
        return {name: gene.sample(rng) for name, gene in self._genes.items()}

    def canonicalize(self, values: Mapping[str, Any] | Sequence[Any]) -> dict[str, Any]:
        """Values in canonical form: genes' own normal form, then ``canonical`` if given."""
        d = self.as_dict(values)
        d = {name: gene.canonical(d[name]) for name, gene in self._genes.items()}
        if self.canonical is not None:
            d = dict(self.canonical(dict(d)))
        return d

    def key(self, values: Mapping[str, Any] | Sequence[Any]) -> tuple[Any, ...]:
        """A hashable key equal for all genomes that :meth:`canonicalize` maps together."""
        d = self.canonicalize(values)
        return tuple(d[name] for name in self.names)

    @property
    def size(self) -> int | None:
        """Number of distinct genomes (ignoring ``canonical``), or ``None`` if continuous."""
        n = 1
        for gene in self._genes.values():
            if gene.size is None:
                return None
            n *= gene.size
        return n

    def grid(self) -> Iterator[dict[str, Any]]:
        """Every genome of a finite space, in lexicographic gene order."""
        if self.size is None:
            raise ValueError(f"space has continuous genes {[n for n, g in self.items() if g.size is None]}; no grid")
        for combo in itertools.product(*(g.grid() for g in self._genes.values())):
            yield dict(zip(self.names, combo))

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "genes": {name: gene.to_dict() for name, gene in self._genes.items()},
            "canonical": None if self.canonical is None else _callable_path(self.canonical),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SearchSpace":
        genes = [(name, gene_from_dict(g)) for name, g in d["genes"].items()]
        canonical = d.get("canonical")
        return cls(genes, canonical=_resolve(canonical) if canonical else None)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> "SearchSpace":
        return cls.from_dict(json.loads(text))


def _as_gene(spec: Any) -> Gene:
    if isinstance(spec, (Choice, IntRange, FloatRange)):
        return spec
    if isinstance(spec, list):
        return Choice(spec)
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise ValueError(f"a range must be a (low, high) tuple, got {spec!r}")
        return FloatRange(*spec)
    raise TypeError(
        f"a gene must be a Choice, IntRange, FloatRange, a list of choices or a (low, high) tuple, got {spec!r}"
    )
