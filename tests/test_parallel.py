"""deapnn.parallel: serial, spawned processes and SCOOP give the serial run's results.

Real components only: spawned worker processes, real ``python -m scoop`` subprocesses (one host,
a two-"host" hostfile on loopback and, when sshd is installed, a host reached over ssh), real Keras
training on digits and real batched weight evaluation.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import parallel_helpers as helpers
from deapnn.core.failures import Failure
from deapnn.hparams.genome import make_genome
from deapnn.parallel import (
    BACKENDS,
    EvaluationError,
    ProcessMap,
    ScoopMap,
    SerialMap,
    TaskError,
    WorkerPool,
    get_map,
    register_backend,
    resolve_backend,
    run_task,
    scoop_running,
    threads_per_worker,
)
from deapnn.parallel.worker import thread_environment
from deapnn.hparams.toolbox import make_toolbox

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SCRIPT = TESTS / "scoop_script.py"


def toy(a: int, b: int):
    return make_genome(helpers.TOY_SPACE, {"a": a, "b": b})


def scoop(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m scoop ARGS`` with deapnn importable; fail with its output if it fails."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "scoop", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


# ---------------------------------------------------------------------------- choosing a backend
def test_resolve_backend():
    assert not scoop_running()
    assert resolve_backend("auto") == "serial"
    assert resolve_backend("auto", workers=1) == "serial"
    assert resolve_backend("auto", workers=2) == "processes"
    for name in ("serial", "processes", "scoop"):
        assert resolve_backend(name) == name
    assert set(BACKENDS) == {"auto", "serial", "processes", "scoop"}
    with pytest.raises(ValueError, match="unknown backend 'threads'"):
        resolve_backend("threads")


def test_backend_from_environment(monkeypatch):
    monkeypatch.setenv("DEAPNN_BACKEND", "processes")
    assert isinstance(get_map(None, workers=2), ProcessMap)
    monkeypatch.setenv("DEAPNN_BACKEND", "nope")
    with pytest.raises(ValueError, match="'nope'"):
        get_map(None)


def test_get_map_types_and_validation():
    assert isinstance(get_map("serial"), SerialMap)
    assert isinstance(get_map("scoop"), ScoopMap)
    process_map = get_map("processes", workers=2, timeout=5, retries=0)
    assert isinstance(process_map, ProcessMap) and process_map.workers == 2
    with pytest.raises(ValueError, match="workers must be a positive number, got 0"):
        get_map("processes", workers=0)
    with pytest.raises(ValueError, match="timeout must be a positive number, got -1"):
        get_map("processes", timeout=-1)
    with pytest.raises(ValueError, match="retries must be an int >= 0, got -1"):
        get_map("processes", workers=1, retries=-1)
    with pytest.raises(ValueError, match="fork is unsafe"):
        WorkerPool(1, start_method="fork")
    with pytest.warns(RuntimeWarning, match="only enforced by the 'processes' backend"):
        get_map("serial", timeout=3)


def test_threads_per_worker(monkeypatch):
    monkeypatch.delenv("DEAPNN_WORKER_THREADS", raising=False)
    assert threads_per_worker(2, cores=2) == 1
    assert threads_per_worker(2, cores=16) == 8
    assert threads_per_worker(4, cores=2) == 1
    monkeypatch.setenv("DEAPNN_WORKER_THREADS", "3")
    assert threads_per_worker(2, cores=2) == 3
    env = thread_environment(4)
    assert env["OMP_NUM_THREADS"] == env["TF_NUM_INTRAOP_THREADS"] == "4"
    assert env["TF_NUM_INTEROP_THREADS"] == "2"
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        threads_per_worker(0)


def test_workers_start_with_their_share_of_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with get_map("processes", workers=2, threads=1) as backend_map:
        assert backend_map(helpers.thread_settings, [0, 1]) == [("1", "1", "1")] * 2
    assert "OMP_NUM_THREADS" not in os.environ        # the master's environment is untouched
    with get_map("processes", workers=1, threads=1) as backend_map:   # a replaced worker too
        backend_map.pool.start()
        victim = backend_map.pool.pids[0]
        os.kill(victim, signal.SIGKILL)
        assert backend_map(helpers.thread_settings, [0]) == [("1", "1", "1")]
        assert victim not in backend_map.pool.pids and backend_map.pool.counts["spawned"] == 2
    assert "OMP_NUM_THREADS" not in os.environ


def test_importing_parallel_does_not_import_tensorflow():
    code = "import sys, deapnn.parallel; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_large_evaluators_travel_through_a_file_written_once(monkeypatch):
    from deapnn.parallel import pool as pool_module

    monkeypatch.setattr(pool_module, "INLINE_BYTES", 0)   # every evaluator counts as large
    evaluator = helpers.ToyEvaluator(raise_on=2)
    with get_map("processes", workers=2) as backend_map:
        fits = backend_map(evaluator, [toy(a, 1) for a in range(4)])
        folder = backend_map.pool._state["dir"]
        assert len(os.listdir(folder)) == 1                # one file for one evaluator
        assert backend_map(evaluator, [toy(0, 3)]) == [(30.0,)]
        assert len(os.listdir(folder)) == 1
    assert fits[0] == (10.0,) and fits[3] == (13.0,) and fits[2].reason.startswith("ValueError")
    assert not os.path.exists(folder)                      # removed with the pool


def test_a_population_evaluator_is_packed_once_while_the_master_scores_minibatches():
    """Scoring in the master (honest re-scoring of survivors) rebuilds the evaluator's tensors of
    the current minibatch, which are not pickled: the evaluator must not be packed and shipped
    again for that (a weight GA under SCOOP re-sent its training set every generation, and SCOOP
    failed on the second copy). A change to what is pickled still packs it anew."""
    import numpy as np

    from deapnn.weights import BatchedEvaluator, NetworkSpec

    data = helpers._digits()
    evaluator = BatchedEvaluator(NetworkSpec.mlp((8, 8), [16], 10), data.x_train, data.y_train,
                                 batch_size=32)
    backend_map = get_map("serial")
    packed = backend_map.pack(evaluator)
    population = np.zeros((3, evaluator.size), np.float32)
    for step in range(3):
        evaluator.evaluate_population(population, step=step)
        assert backend_map.pack(evaluator) is packed
    evaluator.x = evaluator.x.copy()
    assert backend_map.pack(evaluator) is not packed


def test_maps_pickle_without_their_processes():
    process_map = get_map("processes", workers=1)
    assert process_map([1, 2].__contains__, [1, 3]) == [True, False]
    clone = pickle.loads(pickle.dumps(process_map))
    assert clone._pool is None and clone.workers == 1
    process_map.close()
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(process_map.pool)


def test_register_backend_keeps_the_cache_on_the_master():
    toolbox = make_toolbox(helpers.TOY_SPACE, helpers.ToyEvaluator())
    backend_map = register_backend(toolbox, "serial")
    assert toolbox.map.mapper is backend_map          # toolbox.cache.map(backend_map)
    assert backend_map.default_failure == (-float("inf"),)   # worst value for FitnessMax
    genomes = [toy(1, 2), toy(1, 2), toy(3, 0)]
    assert toolbox.map(toolbox.cache, genomes) == [(21.0,), (21.0,), (3.0,)]
    assert toolbox.cache.misses == 2 and backend_map.individuals == 2


# ------------------------------------------------------------------------------ failure handling
def test_exception_becomes_failure_in_every_local_backend():
    evaluator = helpers.ToyEvaluator(raise_on=2)
    genomes = [toy(1, 1), toy(2, 1), toy(3, 1)]
    for backend_map in (get_map("serial"), get_map("processes", workers=2)):
        with backend_map:
            fits = backend_map(evaluator, genomes)
        assert fits[0] == (11.0,) and fits[2] == (13.0,)
        assert isinstance(fits[1], Failure) and fits[1] == (-1.0,)
        assert fits[1].reason.startswith("ValueError: cannot evaluate a=2")
        assert backend_map.failures == 1


def test_unknown_failure_values_raise():
    def boom(_):
        raise RuntimeError("no")

    with pytest.raises(EvaluationError, match="RuntimeError: no"):
        SerialMap()(boom, [1])
    assert SerialMap(failure=(0.0,))(boom, [1])[0].reason.startswith("RuntimeError: no")


def test_run_task_contract():
    out = run_task(helpers.ToyEvaluator(raise_on=0), [toy(0, 0), toy(1, 0)])
    assert isinstance(out[0], TaskError) and out[1] == (1.0,)


def test_pool_survives_crashes_and_kills_stuck_evaluations(tmp_path):
    """A worker killed once is retried; one killed every time, a hang and a raise fail alone."""
    evaluator = helpers.ToyEvaluator(marker=str(tmp_path / "killed"), raise_on=1, kill_on=2,
                                     kill_once_on=3, hang_on=4)
    genomes = [toy(a, 1) for a in range(6)]
    with get_map("processes", workers=2, timeout=3.0, retries=1) as backend_map:
        fits = backend_map(evaluator, genomes)
        counts = dict(backend_map.pool.counts)
        assert backend_map([1].__contains__, [1]) == [True]   # still working afterwards
    assert fits[0] == (10.0,) and fits[5] == (15.0,)
    assert fits[3] == (13.0,)                                  # killed once, retried, succeeded
    assert (tmp_path / "killed").exists()
    assert fits[1].reason.startswith("ValueError: cannot evaluate a=1")
    assert fits[2].reason == "worker process died (killed by SIGKILL) during evaluation, 2 attempt(s)"
    assert fits[4].reason == "timed out after 3 s (worker killed)"
    assert all(fits[i] == (-1.0,) for i in (1, 2, 4))
    assert [fits[i].kind for i in (1, 2, 4)] == ["genome", "infrastructure", "infrastructure"]
    assert counts["timeouts"] == 1 and counts["deaths"] == 3 and counts["retries"] == 2


def test_evolution_completes_with_a_raise_and_a_killed_worker(tmp_path):
    """A whole cached run on the process backend: both failures are recorded with their reasons."""
    import deapnn
    from deapnn.core.loop import evolve

    evaluator = helpers.ToyEvaluator(raise_on=2, kill_on=1)
    toolbox = make_toolbox(helpers.TOY_SPACE, evaluator)
    with register_backend(toolbox, "processes", workers=2, retries=1) as backend_map:
        deapnn.seed(3)
        population, logbook = evolve(toolbox.population(n=12), toolbox, 2, cxpb=0.5, mutpb=0.5)
    assert len(logbook) == 3 and len(population) == 12
    reasons = {genome[0]: reason for genome, reason in toolbox.cache.failures.items()}
    assert reasons[2].startswith("ValueError: cannot evaluate a=2")
    assert reasons[1] == "worker process died (killed by SIGKILL) during evaluation, 2 attempt(s)"
    assert toolbox.cache.records[min(k for k in toolbox.cache.failures)] == (-1.0,)
    assert backend_map.failures == len(toolbox.cache.failures)


def test_external_kill_mid_evaluation_is_retried(tmp_path):
    """Kill a busy worker from outside (as the OOM killer would): its task is re-run elsewhere."""
    import threading

    killed: list[int] = []

    def kill_the_first_to_start() -> None:
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            started = os.listdir(tmp_path)
            if started:
                killed.append(int(started[0]))
                os.kill(killed[0], signal.SIGKILL)
            time.sleep(0.01)

    evaluator = helpers.SlowEvaluator(seconds=1.5, started=str(tmp_path))
    with get_map("processes", workers=2) as backend_map:
        killer = threading.Thread(target=kill_the_first_to_start)
        killer.start()
        fits = backend_map(evaluator, [1, 2])
        killer.join()
        assert fits == [(1.0,), (2.0,)]
        assert backend_map.pool.counts["deaths"] == 1 and backend_map.pool.counts["retries"] == 1
        assert killed and killed[0] not in backend_map.pool.pids


# ------------------------------------------------------------------- equal to serial, both kinds
@pytest.fixture(scope="module")
def serial_runs():
    return {"hyper": helpers.hyper_run("serial"), "weights": helpers.weight_run("serial")}


@pytest.fixture(scope="module")
def process_map():
    """Two spawned workers shared by both genome kinds (TensorFlow is imported once per worker)."""
    with get_map("processes", workers=2) as backend_map:
        yield backend_map


def test_processes_equal_serial_for_hyperparameter_genomes(serial_runs, process_map):
    run = helpers.hyper_run(process_map)
    assert run["backend"] == "processes"
    assert run["population"] == serial_runs["hyper"]["population"]
    assert run["fitness"] == serial_runs["hyper"]["fitness"]


def test_processes_equal_serial_for_weight_vectors(serial_runs, process_map):
    run = helpers.weight_run(process_map)
    assert run["backend"] == "processes"
    assert run["tasks"] == 2 * 3                 # one batched chunk per worker per generation
    assert run["fitness"] == serial_runs["weights"]["fitness"]
    assert run["population"] == serial_runs["weights"]["population"]
    assert process_map.pool.counts["spawned"] == 2   # same two workers for both kinds


def test_scoop_equals_serial_for_both_genome_kinds(serial_runs, tmp_path):
    out = tmp_path / "scoop.json"
    scoop("-n", "2", str(SCRIPT), str(out), "hyper", "weights", "toy", "const")
    result = json.loads(out.read_text())
    assert result["scoop_running"]
    hyper, weights = result["hyper"], result["weights"]
    assert hyper["backend"] == weights["backend"] == "scoop"
    assert hyper["population"] == serial_runs["hyper"]["population"]
    assert [tuple(f) for f in hyper["fitness"]] == serial_runs["hyper"]["fitness"]
    assert weights["tasks"] == 2 * 3
    assert [tuple(f) for f in weights["fitness"]] == serial_runs["weights"]["fitness"]
    assert weights["population"] == serial_runs["weights"]["population"]
    (ok, _), (failed, reason), _ = result["toy"]
    assert ok == [10.0] and failed == [-1.0] and reason.startswith("ValueError: cannot evaluate a=1")


def test_same_script_runs_without_scoop(tmp_path):
    """``backend="auto"`` in a script started with plain ``python``: serial, same answers."""
    out = tmp_path / "plain.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, str(SCRIPT), str(out), "toy", "where"], check=True, env=env,
                   cwd=ROOT, capture_output=True, timeout=120)
    result = json.loads(out.read_text())
    assert not result["scoop_running"]
    assert len(result["where"]) == 1                      # one process did everything
    assert result["toy"][0] == [[10.0], None] and result["toy"][1][1].startswith("ValueError")


# ----------------------------------------------------------------------------------- multi-host
def test_scoop_hostfile_two_loopback_hosts(tmp_path):
    """A hostfile naming two loopback hosts: SCOOP launches one worker per "host"."""
    hostfile = tmp_path / "hosts"
    hostfile.write_text("127.0.0.1 1\nlocalhost 1\n")
    out = tmp_path / "where.json"
    scoop("--hostfile", str(hostfile), "--tunnel", "-n", "2", str(SCRIPT), str(out), "where", "toy")
    result = json.loads(out.read_text())
    assert len({pid for pid, _ in result["where"]}) == 2
    assert result["toy"][1][1].startswith("ValueError")


@pytest.fixture
def sshd(tmp_path):
    """A throwaway sshd on 127.0.0.2 (a loopback address SCOOP does not treat as local)."""
    sshd_bin, keygen = shutil.which("sshd") or "/usr/sbin/sshd", shutil.which("ssh-keygen")
    if not (os.path.exists(sshd_bin) and keygen and shutil.which("ssh")):
        pytest.skip("openssh-server / ssh client not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        port = s.getsockname()[1]
    d = tmp_path / "ssh"
    d.mkdir()
    for name in ("hostkey", "id"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    shutil.copy(d / "id.pub", d / "authorized_keys")
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.2\nHostKey {d}/hostkey\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nStrictModes no\n"
        "UsePAM no\nPasswordAuthentication no\nAllowTcpForwarding yes\n")
    (d / "ssh_config").write_text(
        f"Host *\n  Port {port}\n  IdentityFile {d}/id\n  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n")
    wrapper = d / "ssh.sh"
    wrapper.write_text(f'#!/bin/sh\nexec ssh -F {d}/ssh_config "$@"\n')
    wrapper.chmod(0o755)
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
    server = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(d / "sshd_config")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(50):
            if subprocess.run([str(wrapper), "127.0.0.2", "true"], capture_output=True).returncode == 0:
                break
            if server.poll() is not None:
                pytest.skip(f"sshd did not start: {server.stdout.read().decode()[-500:]}")
            time.sleep(0.1)
        else:
            pytest.skip("could not ssh to the throwaway sshd")
        yield wrapper
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_scoop_hostfile_with_a_host_reached_over_ssh(sshd, tmp_path):
    """The launch path of a real cluster: SCOOP starts the second host's worker through ssh."""
    hostfile = tmp_path / "hosts"
    hostfile.write_text("127.0.0.1 1\n127.0.0.2 1\n")
    out = tmp_path / "where.json"
    scoop("--hostfile", str(hostfile), "--tunnel", "--ssh-executable", str(sshd),
          "--python-interpreter", sys.executable, "-n", "2", str(SCRIPT), str(out), "where", "toy")
    result = json.loads(out.read_text())
    remote = [conn for _, conn in result["where"] if conn != "local"]
    assert remote, result["where"]       # at least one worker ran in an ssh session
    assert result["toy"][0][0] == [10.0] and result["toy"][2][0] == [32.0]
