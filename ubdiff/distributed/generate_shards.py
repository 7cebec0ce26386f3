"""UBDiff.generate on a Dask cluster: one output file pair = one shard.

Shard i holds pairs [first_i, first_i + count_i) -- model{i}.npy and
data{i}.npy -- sampled exactly as the single-process generate samples file i
(``sample_latents(count_i, first=first_i)``: pair j's noise is keyed by
(seed, j)) and decoded in the same batches, so with the same thread count the
files hold the same bits. The model travels to the workers as a saved run
folder inside the generation's resumable staging folder (``.ubdiff-model``,
removed before the swap); each worker process loads it once per job.
"""
from __future__ import annotations

import os

MODEL_DIR = ".ubdiff-model"
_CACHE = {}   # worker process: (model folder, fingerprint) -> UBDiff, the last job's only


def _model(model_dir: str, fingerprint: str, device: str = "auto"):
    from ..pipeline import UBDiff
    key = (model_dir, fingerprint, device)
    if key not in _CACHE:
        _CACHE.clear()
        m = UBDiff.load(model_dir, device=device)
        if m.fingerprint() != fingerprint:
            raise RuntimeError(f"{model_dir}: holds another model than the one being generated from "
                               "(was it overwritten?)")
        _CACHE[key] = m
    return _CACHE[key]


def generate_file(model_dir: str, fingerprint: str, folder: str, i: int, first: int, count: int, seed: int,
                  sampler: str, steps, eta: float, weights: str, device: str = "auto") -> int:
    """Write shard i (model{i}.npy, data{i}.npy) into ``folder`` with the model on ``device``
    (the generating model's: the shards are what a single-process run on it writes); returns i."""
    _model(model_dir, fingerprint, device)._write_generated(folder, i, first, count, seed, sampler, steps, eta, weights)
    return i


def forget_models() -> None:
    """Drop the cached model of this worker process (client.run after a job)."""
    _CACHE.clear()


def drop_model_copy(folder: str) -> None:
    """Remove the model copy a distributed generation saved into ``folder``."""
    import shutil
    shutil.rmtree(os.path.join(folder, MODEL_DIR), ignore_errors=True)


def generate_sharded(client, m, folder: str, todo: list, seed: int, sampler: str, steps, eta: float, weights: str,
                     threads=None, progress: bool = True) -> None:
    """Write the shards ``todo`` [(i, first, count)] of model ``m`` into ``folder`` through ``client``."""
    from .dask_jobs import run_shards
    if not todo:
        return
    # one level down: UBDiff.save locks the saved folder's parent, and the client holds the lock of `folder`
    model_dir = os.path.join(folder, MODEL_DIR, "run")
    m.save(model_dir)
    fp = m.fingerprint()   # hashes ~1.1 GB of weights (~1.3 s): once, not once per file pair
    try:
        run_shards(client, generate_file,
                   [(model_dir, fp, folder, i, first, cnt, seed, sampler, steps, eta, weights, m.device)
                    for i, first, cnt in todo],
                   name="generate", resumable=True, threads=threads, progress=progress, desc="generating (file pairs)",
                   ids=[f"file{i}" for i, _, _ in todo])
    finally:
        try:
            client.run(forget_models)
        except Exception:   # noqa: BLE001 -- a worker gone: nothing cached there any more
            pass
        drop_model_copy(folder)
