"""DEAP ``creator`` types, created once at import time.

Importing :mod:`deapnn` (in the main process, a SCOOP worker or a spawned process)
creates the same classes in :mod:`deap.creator`, so individuals pickle by reference
and unpickle anywhere. :func:`define` is idempotent: importing twice neither warns
nor replaces a class.

Types:
    ``creator.FitnessMax`` (1.0,), ``creator.FitnessMin`` (-1.0,),
    ``creator.FitnessMulti`` (1.0, -1.0) -- e.g. accuracy up, parameter count down.
    The individuals are defined beside what they hold: genomes in :mod:`deapnn.hparams.types`,
    weight vectors in :mod:`deapnn.weights.types`.
"""

from __future__ import annotations

from typing import Any

import copyreg

from deap import base, creator



def define(name: str, base_type: type, **attributes: Any) -> type:
    """Create ``creator.<name>`` unless it already exists; return the class.

    Call it at import time of a module that workers import too, so that instances
    unpickle there.

    Raises:
        TypeError: If ``creator.<name>`` exists with a different base class or weights.
    """
    existing = getattr(creator, name, None)
    if existing is None:
        creator.create(name, base_type, **attributes)
        return getattr(creator, name)
    if base_type not in existing.__mro__[1:]:
        raise TypeError(f"creator.{name} already exists with bases {existing.__bases__}, not {base_type!r}")
    weights = attributes.get("weights")
    if weights is not None and tuple(getattr(existing, "weights", ())) != tuple(weights):
        raise TypeError(f"creator.{name} already exists with weights {existing.weights}, not {weights}")
    return existing


def _existing_or_create(name: str, base_type: type, attributes: dict[str, Any]) -> type:
    """Unpickle a creator class: the existing ``creator.<name>`` when it is the same definition,
    else create it (what DEAP does every time)."""
    existing = getattr(creator, name, None)
    if existing is not None and getattr(existing, "reduce_args", None) == (name, base_type, attributes):
        return existing
    return creator.meta_create(name, base_type, attributes)


def _reduce_creator_class(cls: type) -> tuple[Any, ...]:
    return (_existing_or_create, cls.reduce_args)


# DEAP >= 1.4 pickles creator classes by value and re-creates them on every unpickle, replacing
# ``creator.<name>``: after loading a checkpoint (or in a worker, after every task) the toolbox's
# ``creator.Genome`` and the individuals' class would be two different classes. Unpickling the
# same definition now returns the class that exists, and still creates one that does not.
if hasattr(creator, "MetaCreator") and hasattr(creator, "meta_create"):
    copyreg.pickle(creator.MetaCreator, _reduce_creator_class)


FitnessMax = define("FitnessMax", base.Fitness, weights=(1.0,))
FitnessMin = define("FitnessMin", base.Fitness, weights=(-1.0,))
FitnessMulti = define("FitnessMulti", base.Fitness, weights=(1.0, -1.0))
