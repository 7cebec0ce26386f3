"""Functions the Dask tests ship to worker processes (importable there: tests/ is on the
workers' sys.path, which spawned processes inherit from the test process)."""
import os

import numpy as np


def _claim(marker) -> bool:
    """Create ``marker`` atomically: True for exactly one caller, however many workers race (an
    exists-then-create let two workers fail at once)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def logging_simulate(vel, *, log, marker=None, fail="kill", **kw):
    """ubdiff.physics.forward_model that appends one line per call to ``log``; the one call that
    creates ``marker`` (atomically) then fails: fail="kill" kills
    its own worker process (os._exit: no cleanup), as a machine lost mid-shard;
    fail="raise" raises (a shard that fails for good)."""
    from ubdiff.physics import forward_model
    first = f"{float(vel[:, 0].sum()):.6e}"
    if marker is not None and _claim(marker):
        with open(log, "a") as f:
            f.write(f"{fail} {first}\n")
        if fail == "kill":
            os._exit(1)
        raise RuntimeError("simulated failure of one shard")
    out = forward_model(vel, **kw)
    with open(log, "a") as f:
        f.write(f"ok {first}\n")
    return out


def plain_features(x):
    """A feature callable for FID tests: per-sample mean and std of the normalised input."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    return np.stack([x.mean(1), x.std(1), (x ** 2).mean(1)], axis=1)


try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:   # the tests that use it skip without Dask
    WorkerPlugin = object


class KillOnShard(WorkerPlugin):
    """Kills the worker process that starts a task whose key contains ``fragment`` while
    ``marker`` does not exist (once: the worker that creates it atomically), or always when
    ``marker`` is None."""

    def __init__(self, fragment, marker=None):
        self.fragment, self.marker = fragment, marker

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and self.fragment in str(key):
            if self.marker is None:
                os._exit(1)
            if _claim(self.marker):
                os._exit(1)
