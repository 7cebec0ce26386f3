"""Acoustic forward modelling compatible with OpenFWI (shared/specs/forward_modeling.md).

`forward_model` turns velocity maps (m/s) into seismic records with the scheme
OpenFWI's data were simulated with: edge-padded grid (``nbc`` cells a side)
with quadratic damping, 2nd order in time and 4th order in space, a Ricker
source added after each update (scaled by v_src^2 dt^2), receivers recorded
after injection. Defaults give OpenFWI's geometry: 5 shots at row 1, columns
0, 17, 34, 52, 69; 70 receivers on row 1; 1000 steps of 1 ms; 15 Hz.

The work runs in the C core on the device asked for: on the CPU one (map,
shot) simulation per thread (the GIL released), so results do not depend on
the thread count; on a GPU all simulations of a batch advance together, one
launch per time step (csrc/cuda/forward_model.cu), and the two devices agree
to float32 rounding (tests/test_physics_cuda.py).
"""
from __future__ import annotations

import operator

import numpy as np

from ._native import lib
from .ops import f32

OPENFWI_SRC_X = (0, 17, 34, 52, 69)
MAX_CFL = float(np.sqrt(3.0 / 8.0))  # stability limit of v dt / dx


def ricker(freq: float = 15.0, dt: float = 1e-3, n: int | None = None) -> np.ndarray:
    """Ricker wavelet of the spec, float32: (1 - 2b) exp(-b), b = (pi f dt (nc - k))^2.

    Its non-zero part has nw = 2 floor(2.2 / (f dt) / 2) + 1 samples peaking
    (value 1) at k = nw // 2 (147 and 73 for 15 Hz, 1 ms). `n` samples are
    returned (default nw); samples past nw are zero.
    """
    freq, dt = float(freq), float(dt)
    nw = lib.ricker_length(freq, dt)
    n = nw if n is None else operator.index(n)
    if n < 0:
        raise ValueError(f"ricker: n must be >= 0, got {n}")
    w = np.empty(n, np.float32)
    lib.ricker(w, freq, dt)
    return w


def cfl_number(velocity, dt: float = 1e-3, dx: float = 10.0) -> float:
    """Courant number max(v) dt / dx; the scheme is stable up to sqrt(3/8) ~ 0.612."""
    v = np.asarray(velocity, dtype=np.float64)
    if v.size == 0:
        raise ValueError("cfl_number: velocity is empty")
    if not np.isfinite(v).all():
        raise ValueError("cfl_number: velocity contains NaN or infinite values")
    if not (dt > 0 and dx > 0):
        raise ValueError(f"cfl_number: dt and dx must be positive, got {dt} and {dx}")
    return float(v.max() * dt / dx)


def _positions(values, name: str, count: int | None = None) -> list[int]:
    """Ints from a scalar or a sequence (broadcast to `count` when a scalar)."""
    arr = np.atleast_1d(np.asarray(values))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"forward_model: {name} must be an int or a non-empty 1-D sequence of ints")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == object):
        raise TypeError(f"forward_model: {name} must hold ints, got dtype {arr.dtype}")
    out = [operator.index(v) for v in arr]
    if count is not None and len(out) == 1:
        out = out * count
    if count is not None and len(out) != count:
        raise ValueError(f"forward_model: {name} has {len(out)} entries, expected 1 or {count}")
    return out


def forward_model(velocity, *, freq: float = 15.0, nt: int = 1000, dt: float = 1e-3, dx: float = 10.0,
                  nbc: int = 120, src_x=OPENFWI_SRC_X, src_z=1, rec_z=1, rec_x=None, batch_size: int = 16,
                  progress: bool = False, device: str = "auto") -> np.ndarray:
    """Seismic records of velocity maps (m/s).

    velocity: (N, 1, H, W) -> (N, len(src_x), nt, len(rec_x)) float32, or a
    single (H, W) map -> (len(src_x), nt, len(rec_x)). Positions are interior
    cell indices (row z from the top, column x); `src_z` / `rec_z` may be a
    scalar for all shots / receivers; `rec_x` None means every column.
    Maps go to the core `batch_size` at a time (a tqdm bar over batches when
    `progress`). device: "cpu", "cuda" (needs a CUDA build and a GPU) or
    "auto" (the GPU when one is usable, else the CPU); each batch crosses to
    the device and back once.

    Raises ValueError for a wrong shape, NaN / infinite / non-positive
    velocities, and unstable maps, naming the map: max(v) dt/dx > sqrt(3/8),
    or, on the map's border (repeated into the damped padding), v dt/dx >
    sqrt(3/8 - 3 kappa_max/16) with kappa_max the damping at the outer edge
    (only matters near the limit or for a thin padding: OpenFWI's 4500 m/s
    with nbc=120 is far from it). TypeError for non-numeric input.
    """
    v = f32(velocity, "velocity")
    single = v.ndim == 2
    if single:
        v = v[None]
    elif v.ndim == 4 and v.shape[1] == 1:
        v = v[:, 0]
    else:
        raise ValueError(f"forward_model: velocity must be (N, 1, H, W) or (H, W), got shape {v.shape}")
    v = np.ascontiguousarray(v)
    N, H, W = v.shape
    if N == 0 or H == 0 or W == 0:
        raise ValueError(f"forward_model: velocity has an empty dimension, shape {v.shape}")
    nt, nbc, batch_size = operator.index(nt), operator.index(nbc), operator.index(batch_size)
    if nt <= 0:
        raise ValueError(f"forward_model: nt must be positive, got {nt}")
    if batch_size <= 0:
        raise ValueError(f"forward_model: batch_size must be positive, got {batch_size}")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"forward_model: device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    sx = _positions(src_x, "src_x")
    sz = _positions(src_z, "src_z", len(sx))
    rx = list(range(W)) if rec_x is None else _positions(rec_x, "rec_x")
    rz = _positions(rec_z, "rec_z", len(rx))
    freq, dt, dx = float(freq), float(dt), float(dx)
    # All maps are checked first, so a bad one fails before any work and the
    # message carries its index in `velocity`.
    lib.check_velocity(v, dt, dx, nbc)

    out = np.empty((N, len(sx), nt, len(rx)), np.float32)
    starts = range(0, N, batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, total=len(starts), desc="forward modelling", unit="batch")
    for i in starts:
        j = min(i + batch_size, N)
        lib.forward_model(out[i:j], v[i:j], sz, sx, rz, rx, freq, dt, dx, nbc, device)
    return out[0] if single else out
