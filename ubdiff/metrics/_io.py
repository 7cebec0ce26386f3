"""Minimal loader of OpenFWI-layout folders for the evaluation.

TODO: switch to ubdiff.data once it is merged (it owns the OpenFWI layout).
A folder holds velocity files model*.npy / vel*.npy (N, 1, 70, 70) and/or
seismic files data*.npy / seis*.npy (N, 5, nt, 70); file i of one kind pairs with
the file of the other kind that has the same suffix (model3 <-> data3,
vel2_1_0 <-> seis2_1_0, velocity <-> seismic).
"""
from __future__ import annotations

import os
import re

import numpy as np

_VEL = re.compile(r"^(velocity|model|vel)(.*)\.npy$")
_SEIS = re.compile(r"^(seismic|data|seis)(.*)\.npy$")


def _natural_key(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _scan(folder: str, pattern) -> dict[str, str]:
    out = {}
    for name in os.listdir(folder):
        m = pattern.match(name)
        if m:
            out[m.group(2)] = os.path.join(folder, name)
    return out


def _stack(paths: list[str], max_samples: int | None, what: str, progress: bool = False):
    parts, total = [], 0
    if progress and paths:
        from tqdm.auto import tqdm
        paths = tqdm(paths, desc=f"loading {what}", unit="file")
    for p in paths:
        if max_samples is not None and total >= max_samples:
            break
        a = np.load(p, mmap_mode="r")
        if a.ndim != 4:
            raise ValueError(f"{p}: expected a 4-D {what} array, got shape {a.shape}")
        take = a.shape[0] if max_samples is None else min(a.shape[0], max_samples - total)
        parts.append(np.asarray(a[:take], dtype=np.float32))
        total += take
    if not parts:
        return None
    if len({x.shape[1:] for x in parts}) > 1:
        raise ValueError(f"{what} files have different sample shapes: {sorted({x.shape[1:] for x in parts})}")
    return np.concatenate(parts, axis=0)


def load_folder(folder: str, max_samples: int | None = None, progress: bool = False) -> dict:
    """{'velocity': (N,1,H,W) or None, 'seismic': (N,S,T,R) or None, 'paired': bool, 'files': [...]}.

    When both kinds are present, only files whose suffixes match are loaded, in
    natural order, so velocity[i] and seismic[i] are a pair.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"not a folder: {folder}")
    vel, seis = _scan(folder, _VEL), _scan(folder, _SEIS)
    if not vel and not seis:
        raise FileNotFoundError(f"{folder}: no model*/vel*/velocity*.npy or data*/seis*/seismic*.npy files")
    paired = bool(vel) and bool(seis)
    if paired:
        keys = sorted(set(vel) & set(seis), key=_natural_key)
        if not keys:
            raise ValueError(f"{folder}: velocity and seismic files have no matching suffixes "
                             f"(velocity {sorted(vel)}, seismic {sorted(seis)})")
        vel_paths, seis_paths = [vel[k] for k in keys], [seis[k] for k in keys]
    else:
        vel_paths = [vel[k] for k in sorted(vel, key=_natural_key)]
        seis_paths = [seis[k] for k in sorted(seis, key=_natural_key)]
    v = _stack(vel_paths, max_samples, "velocity", progress)
    s = _stack(seis_paths, max_samples, "seismic", progress)
    if paired and len(v) != len(s):
        raise ValueError(f"{folder}: paired files hold {len(v)} velocity maps but {len(s)} seismic records")
    return {"velocity": v, "seismic": s, "paired": paired, "files": vel_paths + seis_paths}
