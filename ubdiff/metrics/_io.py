"""Loader of OpenFWI-layout folders for the evaluation (whole arrays in memory).

A folder holds velocity files model*.npy / vel*.npy / velocity*.npy (N, 1, H, W)
and/or seismic files data*.npy / seis*.npy / seismic*.npy (N, S, T, R). Pairs
follow OpenFWI's naming schemes: model<X> <-> data<X>, vel<X> <-> seis<X>,
velocity<X> <-> seismic<X>. Pairing is exact: when both kinds are present
every file must have its partner, and a file without one is an error naming
it (never silently left out). A folder made by ubdiff (ubdiff_dataset.json)
is read as its validated file list says: its velocity files beyond the
paired ones are velocity-only by construction and are listed under
``velocity_only_files``, not loaded, so velocity[i] and seismic[i] stay a pair.

Every file goes through ubdiff.data's validating reader (regular files only,
header, dtype and size checks, errors name the file) and must be finite.
"""
from __future__ import annotations

import os
import re

import numpy as np

from ..data import DataError, openfwi
from ..data.files import recover_folder
from ..data.npyio import check_finite, open_npy

_VEL = re.compile(r"^(velocity|model|vel)(.*)\.npy$")
_SEIS = re.compile(r"^(seismic|data|seis)(.*)\.npy$")
_SCHEME = {"velocity": "seismic", "model": "data", "vel": "seis"}   # velocity prefix -> seismic prefix


def _natural_key(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _scan(folder: str, pattern) -> dict:
    """(scheme, suffix) -> path; the scheme is the velocity prefix of the pair."""
    out = {}
    for name in os.listdir(folder):
        m = pattern.match(name)
        if m:
            prefix = m.group(1)
            scheme = prefix if prefix in _SCHEME else next(k for k, v in _SCHEME.items() if v == prefix)
            out[(scheme, m.group(2))] = os.path.join(folder, name)
    return out


def _order(keys):
    return sorted(keys, key=lambda k: (_natural_key(k[1]), k[0]))


def _stack(files, max_samples, what, progress=False):
    """Concatenated samples of [(path, take, holds)], at most max_samples in all.

    take: the samples to use, the file's first ones (None: all); holds: the
    number of samples the file must hold (None: any, at least ``take``)."""
    parts, total = [], 0
    if progress and files:
        from tqdm.auto import tqdm
        files = tqdm(files, desc=f"loading {what}", unit="file")
    for p, take, holds in files:
        if max_samples is not None and total >= max_samples:
            break
        a = open_npy(p, what=what, ndim=4, dtype="real")
        if (holds is not None and a.shape[0] != holds) or (take is not None and a.shape[0] < take):
            raise DataError(f"{p}: holds {a.shape[0]} samples, its pairing records {holds or take}")
        n = a.shape[0] if take is None else take
        n = n if max_samples is None else min(n, max_samples - total)
        part = np.asarray(a[:n], dtype=np.float32)
        check_finite(part, p)
        parts.append(part)
        total += n
    if not parts:
        return None
    if len({x.shape[1:] for x in parts}) > 1:
        raise DataError(f"{what} files have different sample shapes: {sorted({x.shape[1:] for x in parts})}")
    return np.concatenate(parts, axis=0)


def _from_meta(folder, meta):
    """([(velocity path, take, holds)], [(seismic path, take, holds)], velocity-only names) of a ubdiff dataset."""
    vel, seis = meta["velocity_files"], meta["seismic_files"]
    vcounts = meta.get("file_counts") or [None] * len(vel)
    scounts = meta.get("paired_counts") or [None] * len(seis)
    if not seis:
        return [(os.path.join(folder, v), None, n) for v, n in zip(vel, vcounts)], [], []
    v_files = [(os.path.join(folder, v), m, n) for v, m, n in zip(vel, scounts, vcounts)]
    s_files = [(os.path.join(folder, s), m, m) for s, m in zip(seis, scounts)]
    return v_files, s_files, list(vel[len(seis):])


def load_folder(folder: str, max_samples: int | None = None, progress: bool = False) -> dict:
    """{'velocity': (N,1,H,W) or None, 'seismic': (N,S,T,R) or None, 'paired': bool, 'files': [...],
    'velocity_only_files': [...]}.

    When both kinds are present, velocity[i] and seismic[i] are a pair, in the
    natural order of the file names; unpaired files raise DataError naming them.
    """
    recover_folder(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"not a folder: {folder}")
    meta = openfwi.read_meta(folder)
    left_out = []
    if meta is not None:
        v_files, s_files, left_out = _from_meta(folder, meta)
        paired = bool(s_files)
    else:
        vel, seis = _scan(folder, _VEL), _scan(folder, _SEIS)
        if not vel and not seis:
            raise FileNotFoundError(f"{folder}: no model*/vel*/velocity*.npy or data*/seis*/seismic*.npy files")
        paired = bool(vel) and bool(seis)
        if paired:
            lonely = sorted(os.path.basename(p) for k, p in {**vel, **seis}.items() if (k in vel) != (k in seis))
            if lonely:
                raise DataError(f"{folder}: files without a partner: {', '.join(lonely)} (pairs are "
                                "model<X>/data<X>, vel<X>/seis<X>, velocity<X>/seismic<X>; move unpaired "
                                "files elsewhere to evaluate the pairs)")
        v_files = [(vel[k], None, None) for k in _order(vel)]
        s_files = [(seis[k], None, None) for k in _order(seis)]
        if paired:   # a pair's two files hold the same number of samples, else the pairs shift
            counts = [open_npy(p, what="seismic", ndim=4, dtype="real").shape[0] for p, _, _ in s_files]
            for (pv, _, _), (ps, _, _), n in zip(v_files, s_files, counts):
                nv = open_npy(pv, what="velocity", ndim=4, dtype="real").shape[0]
                if nv != n:
                    raise DataError(f"{pv}: holds {nv} velocity maps but its partner {ps} holds {n} seismic "
                                    "records; a pair's files must hold the same number of samples")
            v_files = [(p, None, n) for (p, _, _), n in zip(v_files, counts)]
            s_files = [(p, None, n) for (p, _, _), n in zip(s_files, counts)]
    v = _stack(v_files, max_samples, "velocity", progress)
    s = _stack(s_files, max_samples, "seismic", progress)
    if paired and len(v) != len(s):
        raise DataError(f"{folder}: paired files hold {len(v)} velocity maps but {len(s)} seismic records")
    return {"velocity": v, "seismic": s, "paired": paired, "files": [f[0] for f in v_files + s_files],
            "velocity_only_files": left_out}
