"""Checkpoints: safetensors files written atomically, checked on load.

A checkpoint holds named float32 tensors (parameters, and where present the
optimiser's m/v, the EMA copy and BatchNorm statistics) plus a JSON metadata
block (model kind, config, training state: step counters, learning-rate
schedule position, RNG state). safetensors stores metadata as str -> str, so
ours lives under one key, "ubdiff", as a JSON string.

Writing goes to a locked temporary file in the target folder, fsync, then
os.replace (ubdiff.data.files.atomic_path) -- a crash never leaves a
half-written checkpoint under the real name, and the next save of the same
file removes a temporary a killed writer left behind.

Reading checks, in this order, before the caller allocates anything: the
path is a regular file; it is a safetensors file written by ubdiff (format
version, metadata a JSON object); the metadata's config holds only plain
values in range (ints 0..2^31-1, finite floats, short strings, small lists);
and, for the model kinds whose parameter table can be computed without
allocating a model, the tensors the config predicts are in the file with the
predicted shapes -- so a tampered or foreign config fails here, not after a
model of its size was allocated. :func:`load` then checks every expected
tensor's presence, shape and dtype and that no tensor holds NaN or Inf. Every
failure is a CheckpointError naming the file (and the tensor or key).
"""
from __future__ import annotations

import json
import math
import os
import re
from typing import Mapping

import numpy as np

FORMAT_VERSION = 1
META_KEY = "ubdiff"

_INT_MAX = 2 ** 31 - 1      # the C core's sizes are ints
_SEED_MAX = 2 ** 64 - 1     # seeds are uint64
_MAX_BATCH = 1 << 16        # sanity bound on a recorded max_batch (activations scale with it)
_MAX_LIST = 4096
_MAX_STR = 256


class CheckpointError(ValueError):
    """A checkpoint file is missing, foreign, truncated or does not fit the model."""


def save(path: str, tensors: Mapping[str, np.ndarray], meta: Mapping) -> None:
    """Writes `tensors` (name -> array) and JSON-able `meta` to `path` atomically."""
    from safetensors.numpy import save_file

    from .data.files import atomic_path, clean_stale

    if not tensors:
        raise ValueError("checkpoint.save: no tensors to save")
    arrays = {}
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        if a.dtype != np.float32:
            raise TypeError(f"checkpoint.save: tensor {name!r} has dtype {a.dtype}, expected float32")
        arrays[name] = a
    header = {META_KEY: json.dumps({"format": FORMAT_VERSION, **dict(meta)}, sort_keys=True)}
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # temporaries of earlier ubdiff versions (".tmp-XXXX.safetensors") left by killed writers
    clean_stale(folder, lambda n: n.startswith(".tmp-") and n.endswith(".safetensors"))
    with atomic_path(path) as tmp:
        save_file(arrays, tmp, metadata=header)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())


# ---- metadata checks ---------------------------------------------------------------
def _check_value(path, key, v, depth=0):
    if isinstance(v, bool) or v is None:
        return
    if isinstance(v, int):
        if not 0 <= v <= _INT_MAX:
            raise CheckpointError(f"{path}: config key {key!r} = {v} is out of range 0..{_INT_MAX}")
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise CheckpointError(f"{path}: config key {key!r} = {v} is not finite")
    elif isinstance(v, str):
        if len(v) > _MAX_STR:
            raise CheckpointError(f"{path}: config key {key!r} holds a {len(v)}-character string")
    elif isinstance(v, list):
        if depth >= 2 or len(v) > _MAX_LIST:
            raise CheckpointError(f"{path}: config key {key!r} holds a list nested too deeply or too long")
        for x in v:
            _check_value(path, key, x, depth + 1)
    else:
        raise CheckpointError(f"{path}: config key {key!r} holds a {type(v).__name__}, expected numbers or lists")


def _check_int(path, meta, key, lo, hi):
    v = meta.get(key)
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi):
        raise CheckpointError(f"{path}: metadata {key!r} must be an integer in {lo}..{hi}, got {v!r}")


def _check_meta(path, meta):
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: corrupt ubdiff metadata (a JSON {type(meta).__name__}, expected an object)")
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')!r}, this ubdiff reads {FORMAT_VERSION}")
    if not isinstance(meta.get("kind"), (str, type(None))):
        raise CheckpointError(f"{path}: metadata 'kind' must be a string, got {meta.get('kind')!r}")
    cfg = meta.get("config")
    if cfg is not None:
        if not isinstance(cfg, dict):
            raise CheckpointError(f"{path}: metadata 'config' must be an object, got {type(cfg).__name__}")
        for k, v in cfg.items():
            _check_value(path, k, v)
        _check_int(path, cfg, "max_batch", 1, _MAX_BATCH)
    _check_int(path, meta, "seed", 0, _SEED_MAX)
    _check_int(path, meta, "step", 0, 2 ** 63 - 1)
    _check_int(path, meta, "max_batch", 1, _MAX_BATCH)
    steps = meta.get("steps")
    if steps is not None and not (isinstance(steps, dict) and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 63 for v in steps.values())):
        raise CheckpointError(f"{path}: metadata 'steps' must map names to non-negative integers, got {steps!r}")


# ---- predicted tensor tables (no model allocated) -------------------------------------
def _ae_layout(meta, shapes):
    from .models import ae_spec
    sp = ae_spec.spec(meta["config"])
    out = {n: tuple(s) for n, s, _, _ in sp["params"]}
    out.update({n: tuple(s) for n, s, _ in sp["buffers"]})
    if meta.get("optimizer"):
        n = sum(size for _, _, size in sp["groups"])
        out.update({"optimizer.m": (n,), "optimizer.v": (n,)})
    return out


def _invnet_layout(meta, shapes):
    from .models import inversionnet
    params, stats, _ = inversionnet.layout(meta["config"])
    out = {n: tuple(s) for n, s in params + stats}
    out.update({f"adam_{k}.{n}": tuple(s) for k in ("m", "v") for n, s in params})
    return out


def _featnet_layout(meta, shapes):
    from ._native import lib
    from .metrics import featnet
    params, stats = lib.featnet_layout(featnet._native_config(featnet.normalize_config(meta["config"])))
    out = {n: tuple(s) for n, s, _ in params + stats}
    if meta.get("optimizer"):
        out.update({f"adam_{k}.{n}": tuple(s) for k in ("m", "v") for n, s, _ in params})
    return out


def _diffusion_layout(meta, shapes):
    """The Unet1D tensors whose shapes fix every size the config gives the parameters.

    (The C core has no allocation-free table of the U-Net yet; these are the
    published Unet1D state_dict names, ubdiff/models/diffusion.py.)
    """
    from .models import diffusion
    c = diffusion.resolve_config(meta["config"])
    dim, ch, mults = int(c["dim"]), int(c["channels"]), [int(m) for m in c["dim_mults"]]
    if not mults or any(m < 1 for m in mults) or min(dim, ch, c["heads"], c["dim_head"], c["groups"]) < 1:
        raise ValueError(f"sizes must be positive, got {c}")
    levels = {int(m.group(1)) for n in shapes for m in [re.match(r"downs\.(\d+)\.", n)] if m}
    if levels != set(range(len(mults))):
        raise ValueError(f"dim_mults {mults} asks for {len(mults)} U-Net levels, the file holds {len(levels)}")
    dims = [dim] + [dim * m for m in mults]
    out = {"init_conv.weight": (dim, ch, 7), "final_conv.weight": (ch, dim, 1),
           "mid_block1.block1.proj.weight": (dims[-1], dims[-1], 3),
           "mid_attn.fn.fn.to_qkv.weight": (3 * c["heads"] * c["dim_head"], dims[-1], 1)}
    out.update({f"downs.{i}.0.block1.proj.weight": (dims[i], dims[i], 3) for i in range(len(mults))})
    for key, hi in (("seq_len", 1 << 20), ("timesteps", 1 << 20)):
        if not 1 <= int(c[key]) <= hi:
            raise ValueError(f"{key} must be in 1..{hi}, got {c[key]}")
    return out


#: kind -> (metadata, header shapes) -> {tensor name: shape} the config needs
_LAYOUTS = {"co_latent_autoencoder": _ae_layout, "inversionnet": _invnet_layout, "featnet": _featnet_layout,
            "latent_diffusion": _diffusion_layout}


def _header_shapes(f) -> dict:
    return {n: tuple(f.get_slice(n).get_shape()) for n in f.keys()}


def _preflight(path, meta, shapes):
    kind = meta.get("kind")
    if kind not in _LAYOUTS or meta.get("config") is None:
        return
    try:
        want = _LAYOUTS[kind](meta, shapes)
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise CheckpointError(f"{path}: bad {kind} config in metadata ({type(e).__name__}: {e})") from None
    for name, shape in want.items():
        if name not in shapes:
            raise CheckpointError(f"{path}: tensor {name!r} is missing (its config needs it)")
        if shapes[name] != tuple(shape):
            raise CheckpointError(f"{path}: tensor {name!r} has shape {shapes[name]}, its config needs "
                                  f"{tuple(shape)}")


def read_meta(path: str) -> dict:
    """The validated ubdiff metadata of a checkpoint (see the module docstring); CheckpointError if unusable."""
    from safetensors import safe_open

    from .data.files import check_regular

    if not os.path.lexists(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    check_regular(path, "checkpoint", CheckpointError)
    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
            shapes = _header_shapes(f)
    except Exception as e:  # safetensors raises its own error types on bad headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    if META_KEY not in meta:
        raise CheckpointError(f"{path}: a safetensors file, but not written by ubdiff (no '{META_KEY}' metadata)")
    try:
        info = json.loads(meta[META_KEY])
    except (json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path}: corrupt ubdiff metadata ({e})") from None
    _check_meta(path, info)
    _preflight(path, info, shapes)
    return info


def _finite(a) -> bool:
    # a float64 sum of float32 values is finite iff every value is (no overflow possible)
    return bool(np.isfinite(np.add.reduce(a.reshape(-1), dtype=np.float64))) if a.size else True


def load(path: str, expected: Mapping[str, tuple] | None = None, kind: str | None = None):
    """Reads a checkpoint -> (tensors dict, meta dict).

    expected: name -> shape of the tensors the caller needs; each must be
    present with that shape (extra tensors are allowed only if also listed as
    optional by the caller, i.e. they are returned but not checked).
    kind: the model kind recorded in the metadata must match.
    Every tensor must be float32 and finite.
    """
    from safetensors.numpy import load_file

    meta = read_meta(path)
    if kind is not None and meta.get("kind") != kind:
        raise CheckpointError(f"{path}: holds a {meta.get('kind')!r} checkpoint, expected {kind!r}")
    try:
        tensors = load_file(path)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot read tensors, file truncated or corrupt ({e})") from None
    if expected is not None:
        for name, shape in expected.items():
            if name not in tensors:
                raise CheckpointError(f"{path}: tensor {name!r} is missing")
            if tuple(tensors[name].shape) != tuple(shape):
                raise CheckpointError(
                    f"{path}: tensor {name!r} has shape {tuple(tensors[name].shape)}, expected {tuple(shape)}")
    for name, a in tensors.items():
        if a.dtype != np.float32:
            raise CheckpointError(f"{path}: tensor {name!r} has dtype {a.dtype}, expected float32")
        if not _finite(a):
            raise CheckpointError(f"{path}: tensor {name!r} holds NaN or Inf (a diverged or damaged checkpoint)")
    return tensors, meta
