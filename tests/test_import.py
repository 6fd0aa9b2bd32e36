import subprocess
import sys
import textwrap


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_import_deapnn_does_not_import_tensorflow():
    proc = run_python(
        """
        import sys
        import deapnn, deapnn.hparams.space, deapnn.hparams.toolbox, deapnn.core.loop, deapnn.hparams.operators, deapnn.core.cache, deapnn.hparams.evonas
        import deapnn.data, deapnn.keras.models, deapnn.keras.evaluator, deapnn.keras.train, deapnn.hparams.baselines, deapnn.weights, deapnn.parallel
        from deap import creator
        assert creator.WeightVector and creator.Genome
        heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))
        print(heavy)
        assert not heavy, heavy
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_creator_types_exist_and_reimport_neither_warns_nor_replaces():
    proc = run_python(
        """
        import importlib, warnings
        from deap import creator
        import deapnn, deapnn.core.types, deapnn.hparams.types
        before = creator.Genome, creator.FitnessMax, creator.GenomeMulti
        importlib.reload(deapnn.core.types)  # -W error turns any creator warning into a failure
        importlib.reload(deapnn.hparams.types)
        assert (creator.Genome, creator.FitnessMax, creator.GenomeMulti) == before
        assert creator.FitnessMax.weights == (1.0,)
        assert creator.FitnessMin.weights == (-1.0,)
        assert creator.FitnessMulti.weights == (1.0, -1.0)
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_define_rejects_a_conflicting_redefinition():
    import pytest
    from deap import base

    from deapnn.core.types import define

    with pytest.raises(TypeError, match=r"weights \(1\.0,\)"):
        define("FitnessMax", base.Fitness, weights=(-1.0,))


def test_the_run_loop_module_is_not_shadowed_by_the_function():
    import types

    import deapnn
    import deapnn.core.loop

    assert isinstance(deapnn.core.loop, types.ModuleType)
    assert deapnn.evolve is deapnn.core.loop.evolve


def test_layout_shows_the_design():
    import deapnn

    for name in ("core", "hparams", "weights", "keras", "data", "parallel"):
        assert hasattr(getattr(deapnn, name), "__path__"), name  # a subpackage, not a module


def test_unpickling_an_individual_keeps_the_creator_classes():
    # DEAP >= 1.4 re-creates a creator class on every unpickle; deapnn keeps the existing one, so
    # a loaded checkpoint's individuals and the toolbox share one class.
    import pickle

    from deap import creator

    import deapnn

    genome_cls, vector_cls, fitness_cls = creator.Genome, creator.WeightVector, creator.FitnessMax
    genome = deapnn.make_genome(deapnn.SearchSpace({"a": deapnn.IntRange(0, 3)}), {"a": 1})
    genome.fitness.values = (0.5,)
    vector = creator.WeightVector([1.0, 2.0])
    back, vback = pickle.loads(pickle.dumps((genome, vector)))
    assert type(back) is genome_cls and type(vback) is vector_cls
    assert creator.Genome is genome_cls and creator.WeightVector is vector_cls
    assert creator.FitnessMax is fitness_cls and back.fitness.values == (0.5,)
