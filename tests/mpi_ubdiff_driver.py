"""Run under ``mpirun -n R`` (or alone): train the small UBDiff's autoencoder (step 1) or
latent diffusion data-parallel in a run folder and dump every rank's state.

    mpirun -n 2 python tests/mpi_ubdiff_driver.py DATA.npz RUN_DIR OUT_DIR JOB [JOB ...]

DATA.npz holds ``velocity`` (N, 1, 70, 70) in m/s (and, for wo_opt jobs, ``seismic``
(N, 5, 250, 70)). RUN_DIR is continued when it holds a run (UBDiff.load on every rank), else
a new UBDiff("small", seed=0, max_batch=8) starts (CPU). Each JOB, in order: ae:E (E more
epochs of fit_autoencoder, batch 8, lr 1e-3), wo_opt:E (E more epochs of fit_wo_opt on the
pairs, batch 8, lr 1e-3) -- either with a ``:sync`` suffix for sync_bn=True -- or
diffusion:S (S more steps of fit_diffusion, batch 4, accum 2, lr 1e-3), after which rank 0
saves RUN_DIR and every rank writes OUT_DIR/{i}_rank{r}.npz (i: the job's number): the
autoencoder's param / grad / m / v / buf and the diffusion's param / m / v / ema flat
buffers (prefixed ae_ / diff_), the diffusion step, the ranks and both loss histories.
One thread per rank.
"""
import os
import sys

import numpy as np

import ubdiff
from ubdiff.distributed.comm import world


def main():
    data, run, out, jobs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    ubdiff.set_num_threads(1)
    comm = world()
    d = np.load(data)
    vel = d["velocity"]
    if os.path.exists(os.path.join(run, "ubdiff.json")):
        m = ubdiff.UBDiff.load(run, device="cpu")
    else:
        m = ubdiff.UBDiff("small", seed=0, max_batch=8, device="cpu")
    os.makedirs(out, exist_ok=True)
    for i, job in enumerate(jobs):
        stage, count, *flag = job.split(":")
        sync = flag == ["sync"]
        if stage == "ae":
            m.fit_autoencoder(vel, int(count), batch_size=8, lr=1e-3, progress=False, comm=comm, sync_bn=sync)
        elif stage == "wo_opt":
            m.fit_wo_opt(vel, d["seismic"], int(count), batch_size=8, lr=1e-3, progress=False, comm=comm,
                         sync_bn=sync)
        else:
            m.fit_diffusion(vel, int(count), batch_size=4, accum=2, lr=1e-3, progress=False, comm=comm)
        comm.agree(lambda: m.save(run) if comm.is_root else None, f"saving {run}")
        dump = {f"ae_{k}": m.autoencoder.flat(k) for k in ("param", "grad", "m", "v", "buf")}
        dump.update({f"diff_{k}": m.diffusion.flat(k) for k in ("param", "m", "v", "ema")})
        np.savez(os.path.join(out, f"{i}_rank{comm.rank}.npz"), **dump, step=m.diffusion.step, size=comm.size,
                 ae_history=np.array([h["total"] for h in m.history["step1"]]),
                 diff_history=np.array(m.history["diffusion"]))


if __name__ == "__main__":
    main()
