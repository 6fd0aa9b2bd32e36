"""Hyperparameter genome ``creator`` types, created once at import time.

``creator.Genome`` (maximise), ``creator.GenomeMin`` (minimise) and ``creator.GenomeMulti``
(accuracy up, size down) are :class:`~deapnn.hparams.genome.GenomeBase` dicts with the fitness
types of :mod:`deapnn.core.types`. Created at import so SCOOP and spawned workers unpickle them.
"""

from __future__ import annotations

from deapnn.core.types import FitnessMax, FitnessMin, FitnessMulti, define
from deapnn.hparams.genome import GenomeBase

Genome = define("Genome", GenomeBase, fitness=FitnessMax)
GenomeMin = define("GenomeMin", GenomeBase, fitness=FitnessMin)
GenomeMulti = define("GenomeMulti", GenomeBase, fitness=FitnessMulti)
