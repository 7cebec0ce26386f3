"""MPI: a rank that fails must not leave the others waiting. ``mpirun -n 2`` with rank 1
failing (tests/mpi_fail_driver.py; the CLI with a --data folder only rank 0 can see): an
error every rank can learn of (bad data, a batch that cannot be read mid-training) is raised
on both ranks as RanksError naming rank 1; one that cannot be agreed on (an update failing
after the all-reduce, an uncaught error in the script) ends the job through MPI_Abort with
rank 1's traceback. Each launch runs under a timeout and in its own process group, killed
when it expires, so a regression to a deadlock fails the test instead of hanging it.
Skipped with the reason printed without mpi4py or an MPI launcher."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="mpi4py is not installed: pip install 'ubdiff[mpi]' "
                                     "(the test extra brings it with the mpich wheel)")

from test_distributed_mpi import HERE, LAUNCHER  # noqa: E402

pytestmark = pytest.mark.skipif(LAUNCHER is None, reason="no mpiexec / mpirun next to Python or on PATH "
                                                         "(pip install mpich brings one)")
TIMEOUT = 240   # a few steps of the small autoencoder take ~10 s; a deadlock would last forever


def _launch(args, timeout=TIMEOUT):
    """(returncode, stdout, stderr) of LAUNCHER args, the whole process group killed on timeout."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([HERE] + sys.path))
    p = subprocess.Popen([LAUNCHER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"mpirun still running after {timeout} s: a rank was left waiting (deadlock)\n{out}\n{err}")
    return p.returncode, out, err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(3)
    vel = (1500 + 3000 * (0.5 + 0.5 * np.tanh(rng.standard_normal((8, 1, 70, 70))))).astype(np.float32)
    path = str(tmp_path_factory.mktemp("mpi_fail") / "vel.npz")
    np.savez(path, velocity=vel)
    return path


def _case(tmp_path, data, case):
    out = tmp_path / case
    rc, so, se = _launch(["-n", "2", sys.executable, os.path.join(HERE, "mpi_fail_driver.py"), data, str(out), case])
    said = [(out / f"rank{r}.txt").read_text() if (out / f"rank{r}.txt").exists() else None for r in range(2)]
    return rc, se, said


@pytest.mark.parametrize("case, what", [("bad-data", "opening the data failed on 1 of 2 ranks (rank 1: ValueError"),
                                        ("read-fails", "failed on 1 of 2 ranks (rank 1: OSError: rank 1 cannot "
                                                       "read its slice of batch 2)")])
def test_an_agreed_error_is_raised_on_every_rank(tmp_path, data, case, what):
    rc, se, said = _case(tmp_path, data, case)
    assert rc == 0, se
    for r in range(2):
        assert said[r].startswith("RanksError: ") and what in said[r], (r, said[r])


@pytest.mark.parametrize("case, what", [("update-fails", "RuntimeError: rank 1 fails in its second update"),
                                        ("uncaught", "FileNotFoundError")])
def test_an_error_on_one_rank_alone_ends_the_job(tmp_path, data, case, what):
    rc, se, said = _case(tmp_path, data, case)
    assert rc != 0
    assert "ubdiff: rank 1 of 2 failed in" in se and "(MPI_Abort)" in se and what in se, se
    assert said == [None, None]   # neither rank went on as if nothing happened


def test_cli_data_missing_on_one_rank(tmp_path):
    """MPMD launch: rank 0 sees --data, rank 1 is given a folder that does not exist. The
    agreed error is said once, by rank 0, and both ranks exit 1."""
    from ubdiff.data import make_dataset
    make_dataset("flatvel-a", 8, 0, str(tmp_path / "ds"), nt=250, preview=False, progress=False)
    cmd = ["-m", "ubdiff", "train-autoencoder", "--run", str(tmp_path / "run"), "--quiet", "--epochs", "1",
           "--batch-size", "4", "--max-batch", "4", "--data"]
    rc, so, se = _launch(["-n", "1", sys.executable, *cmd, str(tmp_path / "ds"), ":",
                          "-n", "1", sys.executable, *cmd, str(tmp_path / "nowhere")])
    assert rc != 0
    assert se.count("ubdiff train-autoencoder: error: opening") == 1 and "failed on 1 of 2 ranks (rank 1:" in se, se
    assert not (tmp_path / "run" / "ubdiff.json").exists()
