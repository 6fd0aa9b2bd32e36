"""Hyperparameter and architecture genomes: typed search spaces, genome types, DEAP-style
operators, the toolbox factory, brute-force and random-search baselines, and Evo-NAS agents."""

from deapnn.hparams import types  # noqa: F401  (creates creator.Genome* at import time)
from deapnn.hparams.baselines import brute_force, random_search
from deapnn.hparams.controllers import RecurrentController, TableController
from deapnn.hparams.genome import GenomeBase, make_genome, random_genome
from deapnn.hparams.learned import LearnedMutation, mut_learned
from deapnn.hparams.screened import ScreenedMutation, mut_screened
from deapnn.hparams.space import Choice, FloatRange, IntRange, SearchSpace
from deapnn.hparams.toolbox import make_toolbox

__all__ = [
    "Choice",
    "FloatRange",
    "GenomeBase",
    "IntRange",
    "LearnedMutation",
    "ScreenedMutation",
    "RecurrentController",
    "SearchSpace",
    "TableController",
    "brute_force",
    "make_genome",
    "make_toolbox",
    "mut_learned",
    "mut_screened",
    "random_genome",
    "random_search",
]
