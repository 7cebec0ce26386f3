"""Run under ``mpirun -n 2``: rank 1 fails in one of several ways while training the small
UBDiff's autoencoder data-parallel through the Python API (comm=), and no rank may be left
waiting.

    mpirun -n 2 python tests/mpi_fail_driver.py DATA.npz OUT_DIR CASE

DATA.npz holds ``velocity`` (N, 1, 70, 70) in m/s. CASE:

- ``bad-data``: rank 1 passes maps of the wrong shape to fit_autoencoder (its data cannot
  be opened) -- agreed on: every rank raises RanksError;
- ``read-fails``: on rank 1 the second batch cannot be read (an OSError mid-training) --
  agreed on in that step: every rank raises RanksError;
- ``update-fails``: on rank 1 the optimiser update raises in the second step, after the
  gradient all-reduce -- not agreeable: the job ends (MPI_Abort) with rank 1's traceback;
- ``uncaught``: rank 1 raises before it calls ubdiff at all (its own script's error, not
  caught) while rank 0 trains -- sys.excepthook ends the job (MPI_Abort).

Each rank that returns from training writes OUT_DIR/rank{r}.txt: "ok" or the exception's
type and message.
"""
import os
import sys

import numpy as np

import ubdiff
from ubdiff.distributed.comm import world


def main():
    data, out, case = sys.argv[1], sys.argv[2], sys.argv[3]
    ubdiff.set_num_threads(1)
    comm = world()
    os.makedirs(out, exist_ok=True)
    vel = np.load(data)["velocity"]
    m = ubdiff.UBDiff("small", seed=0, max_batch=8, device="cpu")
    if comm.rank == 1:
        if case == "bad-data":
            vel = vel[:, :, :60, :60]
        elif case == "read-fails":
            from ubdiff import pipeline_data
            real, calls = pipeline_data.Source.velocity, []

            def velocity(self, idx, norm):
                calls.append(1)
                if len(calls) == 2:
                    raise OSError("rank 1 cannot read its slice of batch 2")
                return real(self, idx, norm)
            pipeline_data.Source.velocity = velocity
        elif case == "update-fails":
            ae, real_update, calls = m.autoencoder, m.autoencoder.apply_update, []

            def apply_update(*a, **kw):
                calls.append(1)
                if len(calls) == 2:
                    raise RuntimeError("rank 1 fails in its second update")
                return real_update(*a, **kw)
            ae.apply_update = apply_update
        elif case == "uncaught":
            np.load(os.path.join(out, "missing.npz"))   # FileNotFoundError, left uncaught
    try:
        m.fit_autoencoder(vel, 2, batch_size=4, lr=1e-3, progress=False, comm=comm)
        msg = "ok"
    except Exception as e:   # noqa: BLE001 -- what each rank saw is the test's result
        msg = f"{type(e).__name__}: {e}"
    with open(os.path.join(out, f"rank{comm.rank}.txt"), "w") as f:
        f.write(msg)


if __name__ == "__main__":
    main()
