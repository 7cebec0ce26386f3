"""Run under ``mpirun -n R`` (or alone): train a tiny InversionNet data-parallel and dump
every rank's state.

    mpirun -n 2 python tests/mpi_driver.py DATA.npz RUN_DIR OUT_DIR EPOCHS [BATCH [sync]]

DATA.npz holds normalised ``seismic`` (N, 5, 250, 70) and ``velocity`` (N, 1, 70, 70).
Trains EPOCHS more epochs in RUN_DIR (ubdiff.distributed.invnet_train: continues what
is there) with the "small" config, lr 1e-3, seed 0, one thread per rank (``sync``:
BatchNorm statistics over all ranks), and writes
OUT_DIR/rank{r}.npz: that rank's flat param / grad / m / v / stats buffers, step, ranks, and
the run's loss history.
"""
import os
import sys

import numpy as np

import ubdiff
from ubdiff.distributed.comm import world
from ubdiff.distributed.invnet_train import train_inversionnet


class ArrayPairs:
    """The reader train_inversionnet takes: len() and read(sorted indices)."""

    def __init__(self, seismic, velocity):
        self.s, self.v = seismic, velocity

    def __len__(self):
        return len(self.s)

    def read(self, idx):
        return np.ascontiguousarray(self.s[idx]), np.ascontiguousarray(self.v[idx])


def main():
    data, run, out, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 8
    sync = len(sys.argv) > 6 and sys.argv[6] == "sync"
    ubdiff.set_num_threads(1)
    comm = world()
    d = np.load(data)
    model, st = train_inversionnet(ArrayPairs(d["seismic"], d["velocity"]), run, epochs, comm=comm,
                                   progress=False, config="small", batch_size=batch, lr=1e-3, seed=0,
                                   sync_bn=sync)
    os.makedirs(out, exist_ok=True)
    np.savez(os.path.join(out, f"rank{comm.rank}.npz"), **{k: model.flat(k) for k in ("param", "grad", "m", "v", "stats")},
             step=model.step, size=comm.size, history=np.array([h["loss"] for h in st["history"]]))


if __name__ == "__main__":
    main()
