"""Random-sample read rate of an OpenFWI-layout dataset, cold vs warm page cache.

    python benchmarks/loader.py [--files 4] [--per-file 500] [--nt 1000] [--reads 200]
                                [--batch 32] [--dir DIR] [--keep]

Writes a temporary dataset of the real OpenFWI shapes (default 4 files x 500
samples of (5, 1000, 70) float32 seismic = 2.8 GB, plus velocity), then reads
random samples through ubdiff.data.OpenFWIDataset (memory-mapped):
one sample per read, and batches of --batch random indices. "cold": every
file is fsync'ed and evicted from the page cache with
posix_fadvise(POSIX_FADV_DONTNEED) (no root needed) right before the run;
"warm": the same run again once the files have been read whole (median of
3 runs; the first run of a process also pays for fresh output buffers). For scale,
OpenFWI's own loader np.load's a whole 700 MB file to use its samples (last row).
Prints a Markdown table. Numbers on a shared machine are noisy.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import machine, table  # noqa: E402

from ubdiff.data import OpenFWIDataset  # noqa: E402
from ubdiff.data.npyio import npy_writer, write_npy  # noqa: E402


def make(folder, files, per_file, nt):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, nt, 70)).astype(np.float32)
    for i in range(1, files + 1):
        write_npy(os.path.join(folder, f"model{i}.npy"),
                  np.full((per_file, 1, 70, 70), 1500 + i, np.float32))
        with npy_writer(os.path.join(folder, f"data{i}.npy"), (per_file, 5, nt, 70)) as mm:
            for s in range(0, per_file, 50):
                k = min(50, per_file - s)
                offset = np.arange(s, s + k, dtype=np.float32)[:, None, None, None]
                mm[s:s + k] = base[None] + offset       # distinct, non-zero samples


def evict(folder):
    """Drop the folder's files from the page cache (after flushing them)."""
    for name in os.listdir(folder):
        fd = os.open(os.path.join(folder, name), os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(folder):
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), "rb") as f:
            while f.read(64 << 20):
                pass


def run(folder, nt, idx, batch):
    """Seconds to read the samples ``idx`` (one by one, or in batches)."""
    ds = OpenFWIDataset.from_folder(folder, seismic_shape=(5, nt, 70))
    t0 = time.perf_counter()
    if batch == 1:
        for i in idx:
            s, v = ds[int(i)]
    else:
        for b in range(0, len(idx), batch):
            s, v = ds.batch(idx[b:b + batch])
    dt = time.perf_counter() - t0
    del ds   # unmap before the next eviction (mapped pages are not dropped)
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--per-file", type=int, default=500)
    ap.add_argument("--nt", type=int, default=1000)
    ap.add_argument("--reads", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--whole-files", type=int, default=2, help="cold whole-file np.load's timed")
    ap.add_argument("--dir", default=None, help="where to write the dataset (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the dataset")
    a = ap.parse_args()

    folder = tempfile.mkdtemp(prefix="ubdiff_loader_", dir=a.dir)
    sample_mb = (5 * a.nt * 70 + 4900) * 4 / 1e6
    try:
        t0 = time.perf_counter()
        make(folder, a.files, a.per_file, a.nt)
        gb = a.files * a.per_file * sample_mb / 1e3
        print(f"wrote {a.files} x {a.per_file} samples ({gb:.1f} GB)"
              f" in {time.perf_counter() - t0:.0f} s to {folder}")
        rng = np.random.default_rng(1)
        rows = []
        for batch in (1, a.batch):
            idx = rng.choice(a.files * a.per_file, size=a.reads, replace=False)
            evict(folder)
            cold = run(folder, a.nt, idx, batch)
            warm(folder)
            hot = sorted(run(folder, a.nt, idx, batch) for _ in range(3))[1]   # median of 3
            for cache, dt in (("cold", cold), ("warm", hot)):
                rows.append([f"memmap, {'1 sample' if batch == 1 else f'batches of {batch}'}",
                             cache, a.reads, f"{a.reads / dt:,.0f}",
                             f"{a.reads * sample_mb / dt:,.0f}"])
        nfile = min(a.whole_files, a.files)
        evict(folder)
        t0 = time.perf_counter()
        for i in range(1, nfile + 1):
            np.load(os.path.join(folder, f"data{i}.npy"))
            np.load(os.path.join(folder, f"model{i}.npy"))
        dt = time.perf_counter() - t0
        rows.append(["np.load whole file (per sample used: 1)", "cold", nfile,
                     f"{nfile / dt:,.2f}", f"{nfile * a.per_file * sample_mb / dt:,.0f}"])
        print(f"\n{machine()}\nsample = (5, {a.nt}, 70) seismic + (1, 70, 70) velocity float32"
              f" = {sample_mb:.2f} MB; {a.files} files x {a.per_file}\n")
        print(table(rows, ["read", "page cache", "samples", "samples/s", "MB/s"]))
    finally:
        if not a.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
