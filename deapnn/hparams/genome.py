"""The hyperparameter genome: a DEAP-compatible list of gene values that knows its space."""

from __future__ import annotations

import copy
from typing import Any, Mapping

from deapnn.hparams.space import Rng, SearchSpace


class GenomeBase(list):
    """Gene values in ``space.names`` order, readable by position or by gene name.

    DEAP's sequence operators (``cxOnePoint``, ``cxUniform``, ...) see an ordinary list;
    deapnn's operators also read ``.space`` to keep every value inside its gene. The
    ``creator.Genome*`` types in :mod:`deapnn.core.types` add a fitness to this class.

    Example:
        >>> g["lr"], g[0], g.as_dict()           # doctest: +SKIP
    """

    space: SearchSpace

    def __init__(self, values: Any = (), space: SearchSpace | None = None) -> None:
        super().__init__(values)
        self.space = space  # type: ignore[assignment]

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, str):
            index = self.space.index(index)
        return super().__getitem__(index)

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, str):
            index = self.space.index(index)
        super().__setitem__(index, value)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self.space else default

    def as_dict(self) -> dict[str, Any]:
        """``{gene name: value}`` in gene order."""
        return dict(zip(self.space.names, self))

    def key(self) -> tuple[Any, ...]:
        """The canonical hashable key (see :meth:`SearchSpace.key`)."""
        return self.space.key(list(self))

    def __deepcopy__(self, memo: dict[int, Any]) -> "GenomeBase":
        # Values are immutable scalars and the space is immutable: share them, copy the rest
        # (fitness included), so ``toolbox.clone`` is cheap and clones never alias fitness.
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        list.extend(new, self)
        for k, v in self.__dict__.items():
            new.__dict__[k] = v if k == "space" else copy.deepcopy(v, memo)
        return new

    def __repr__(self) -> str:
        if getattr(self, "space", None) is None:
            return f"{type(self).__name__}({list(self)!r})"
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(self.space.names, self))
        return f"{type(self).__name__}({inner})"

    __str__ = __repr__


def make_genome(space: SearchSpace, values: Mapping[str, Any] | Any, cls: type | None = None) -> GenomeBase:
    """Build a validated genome of type ``cls`` (default ``creator.Genome``) from ``values``.

    Raises:
        ValueError: If a value is missing or outside its gene.
    """
    if cls is None:
        from deap import creator

        cls = creator.Genome
    d = space.validate(values)
    return cls([d[n] for n in space.names], space)


def random_genome(space: SearchSpace, cls: type | None = None, rng: Rng | None = None) -> GenomeBase:
    """A genome drawn uniformly from ``space``; randomness from ``rng`` (default: ``random``)."""
    return make_genome(space, space.sample(rng), cls)
