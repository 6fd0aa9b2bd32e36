"""How both toolbox factories take their operator options: one door for both sides.

:func:`deapnn.hparams.make_toolbox` and :func:`deapnn.weights.make_weight_toolbox` name their
operators the same way: ``mate=``/``mutate=``/``select=`` each a name from the factory's table or
any function with DEAP's signature, ``mate_kwargs=``/``mutate_kwargs=``/``select_kwargs=``
overriding the knobs (a knob the operator does not take is a TypeError naming it), and
``elites=`` a count (an int >= 0) of best individuals every selection keeps. Both go through
:func:`register_operators`; the checks here (:func:`check_probability`, :func:`check_sigma`,
:func:`check_elites`) are also what the operators themselves call, so a bad value is named the
same way at registration and at call time.
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, Callable, Mapping

import numpy
from deap import tools

__all__ = [
    "PROBABILITY_KNOBS",
    "check_probability",
    "check_sigma",
    "check_elites",
    "check_knobs",
    "resolve_operator",
    "register_operators",
    "sel_elitist",
]

#: Knob names that are probabilities, checked to lie in [0, 1] wherever they are given.
PROBABILITY_KNOBS = ("indpb", "cxpb", "mutpb", "random_select")

OperatorTable = Mapping[str, tuple[Callable[..., Any], Mapping[str, Any]]]


def check_probability(name: str, value: Any) -> float:
    """``value`` as a float in [0, 1].

    Raises:
        TypeError: If ``value`` is not a real number (bools included).
        ValueError: If it is NaN or outside [0, 1]; the message names ``name`` and the value.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a probability (a number in [0, 1]), got {value!r}")
    if not 0.0 <= value <= 1.0:  # False for NaN too
        raise ValueError(f"{name} must be in [0, 1] (a probability), got {value!r}")
    return float(value)


def check_sigma(name: str, value: Any) -> Any:
    """A step size: a finite number > 0, or an array of finite numbers >= 0 (not all 0).

    Arrays (per-weight steps, e.g. a layout's per-layer scale) may hold zeros for weights that
    must not move.

    Raises:
        TypeError: If ``value`` is not a number or a numeric array.
        ValueError: If it is NaN, infinite or not positive; the message names ``name``.
    """
    if isinstance(value, numpy.ndarray) and value.ndim > 0:
        if value.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a number or a numeric array, got dtype {value.dtype}")
        if not numpy.isfinite(value).all():
            raise ValueError(f"{name} must be finite, got an array holding "
                             f"{value[~numpy.isfinite(value)][0]!r}")
        if (value < 0).any() or not (value > 0).any():
            raise ValueError(f"{name} must be >= 0 everywhere and > 0 somewhere, got min "
                             f"{value.min()!r}, max {value.max()!r}")
        return value
    if isinstance(value, numpy.ndarray) and value.dtype.kind in "fiu":  # a 0-d array
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return value


def check_elites(elites: Any, name: str = "elites") -> int:
    """``elites`` as a count: an int >= 0.

    Raises:
        TypeError: If it is not an int (a fraction such as 0.1 is refused, not rounded).
        ValueError: If it is negative.
    """
    if isinstance(elites, bool) or not isinstance(elites, numbers.Integral):
        raise TypeError(f"{name} is a count of individuals (an int >= 0), got {elites!r}")
    if elites < 0:
        raise ValueError(f"{name} must be an int >= 0, got {elites!r}")
    return int(elites)


def _parameters(func: Callable[..., Any]) -> tuple[set[str], bool]:
    """Names ``func`` takes by keyword, and whether it also takes ``**kwargs``."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # a builtin without a signature: accept anything
        return set(), True
    names = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind is p.VAR_KEYWORD for p in params.values())


def takes(func: Callable[..., Any], name: str) -> bool:
    """Whether ``func`` has a parameter called ``name``."""
    names, _ = _parameters(func)
    return name in names


def check_knobs(role: str, label: str, func: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Check the knobs registered with an operator.

    Raises:
        TypeError: For a knob ``func`` does not take (named, with the knobs it does take).
        ValueError: For a probability knob (:data:`PROBABILITY_KNOBS`) outside [0, 1] or NaN,
            or a ``sigma`` that is not finite and > 0.
    """
    names, var_kw = _parameters(func)
    unknown = sorted(set(kwargs) - names) if not var_kw else []
    if unknown:
        own = sorted(n for n in names if n not in ("individual", "individuals", "ind1", "ind2", "k"))
        raise TypeError(f"{role} {label} takes no argument {unknown[0]!r}; its knobs are {own or 'none'}")
    for key, value in kwargs.items():
        if key in PROBABILITY_KNOBS:
            check_probability(f"{role} {key}", value)
        elif key == "sigma":
            check_sigma(f"{role} sigma", value)


def resolve_operator(role: str, spec: Any, table: OperatorTable,
                     knobs: Mapping[str, Any] | None) -> tuple[Callable[..., Any], dict[str, Any], str]:
    """``(function, knobs, label)`` for ``spec``, a name from ``table`` or a function.

    Named operators start from the table's default knobs, which ``knobs`` override.

    Raises:
        ValueError: For a name not in ``table``.
        TypeError: For ``spec`` neither a string nor callable, or ``knobs`` not a mapping.
    """
    if knobs is not None and not isinstance(knobs, Mapping):
        raise TypeError(f"{role}_kwargs must be a dict of knobs, got {knobs!r}")
    knobs = dict(knobs or {})
    if callable(spec):
        return spec, knobs, f"{getattr(spec, '__name__', spec)!s}"
    if not isinstance(spec, str):
        raise TypeError(f"{role} must be a name or a function, got {spec!r}")
    if spec not in table:
        raise ValueError(f"unknown {role} {spec!r}; choose one of {sorted(table)} or pass a function")
    func, defaults = table[spec]
    names, var_kw = _parameters(func)
    unknown = sorted(set(knobs) - names) if not var_kw else []
    if unknown:
        raise TypeError(f"{role} {spec!r} ({func.__name__}) takes no argument {unknown[0]!r}; "
                        f"its knobs are {sorted(defaults) or 'none'}")
    return func, {**defaults, **knobs}, f"{spec!r} ({func.__name__})"


def sel_elitist(individuals: Any, k: int, select: Callable[..., Any], elites: int,
                **kwargs: Any) -> list[Any]:
    """The ``elites`` best individuals (``tools.selBest``), then ``k - elites`` chosen by ``select``.

    Randomness: whatever ``select`` draws (DEAP's selections use Python's ``random``).

    Args:
        individuals: Candidates.
        k: Number to select.
        select: A DEAP selection ``select(individuals, k, **kwargs)``.
        elites: Number of best individuals always selected (an int, ``0 <= elites <= k``).
        **kwargs: Knobs of ``select``.

    Returns:
        ``k`` individuals (references, as DEAP's selections return), the elites first.
    """
    elites = check_elites(elites)
    if elites > k:
        raise ValueError(f"elites must be <= k={k}, got {elites!r}")
    fit_attr = kwargs.get("fit_attr", "fitness")
    return tools.selBest(individuals, elites, fit_attr=fit_attr) + select(individuals, k - elites, **kwargs)


def register_operators(
    toolbox: Any,
    tables: Mapping[str, OperatorTable],
    *,
    mate: Any,
    mutate: Any,
    select: Any,
    mate_kwargs: Mapping[str, Any] | None = None,
    mutate_kwargs: Mapping[str, Any] | None = None,
    select_kwargs: Mapping[str, Any] | None = None,
    elites: int | None = None,
    prepare: Callable[[str, Callable[..., Any], dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """Register ``mate``, ``mutate`` and ``select`` on ``toolbox`` (both factories' one door).

    Args:
        toolbox: A ``deap.base.Toolbox``.
        tables: ``{"mate": ..., "mutate": ..., "select": ...}``, each ``{name: (function,
            default knobs)}``.
        mate, mutate, select: A name from the matching table, or a function.
        mate_kwargs, mutate_kwargs, select_kwargs: Knobs overriding the defaults.
        elites: Count of best individuals always selected (an int >= 0). A selection that takes
            an ``elites`` knob gets it; any other is wrapped in :func:`sel_elitist`. ``None``
            leaves the selection's own default.
        prepare: ``prepare(role, function, knobs) -> knobs``, the factory's own filling-in
            (e.g. ``indpb=None`` becoming ``1 / len(space)``, an ``rng``), before the checks.

    Raises:
        ValueError / TypeError: See :func:`resolve_operator`, :func:`check_knobs`,
            :func:`check_elites`; ``elites`` given both here and in ``select_kwargs``.
    """
    if elites is not None:
        elites = check_elites(elites)
    for role, spec, knobs in (("mate", mate, mate_kwargs), ("mutate", mutate, mutate_kwargs),
                              ("select", select, select_kwargs)):
        func, kwargs, label = resolve_operator(role, spec, tables[role], knobs)
        if prepare is not None:
            kwargs = prepare(role, func, kwargs)
        check_knobs(role, label, func, kwargs)
        if role == "select":
            if elites is not None and "elites" in (select_kwargs or {}):
                raise TypeError("elites given twice: as elites= and in select_kwargs; give it once")
            if "elites" in kwargs:
                check_elites(kwargs["elites"], "select elites")
            if elites is not None and takes(func, "elites"):
                kwargs["elites"] = elites
            elif elites:
                kwargs = {"select": func, "elites": elites, **kwargs}
                func = sel_elitist
        toolbox.register(role, func, **kwargs)
