"""Checkpoints: safetensors files written atomically, checked on load.

A checkpoint holds named float32 tensors (parameters, and where present the
optimiser's m/v, the EMA copy and BatchNorm statistics) plus a JSON metadata
block (model kind, config, training state: step counters, learning-rate
schedule position, RNG state). safetensors stores metadata as str -> str, so
ours lives under one key, "ubdiff", as a JSON string.

Writing goes to a temporary file in the target folder, fsync, then
os.replace — a crash never leaves a half-written checkpoint under the real
name. Loading checks the file is a safetensors file written by ubdiff for
the expected model kind, and that every expected tensor is present with the
expected shape; any mismatch raises CheckpointError naming the tensor.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Mapping

import numpy as np

FORMAT_VERSION = 1
META_KEY = "ubdiff"


class CheckpointError(ValueError):
    """A checkpoint file is missing, foreign, truncated or does not fit the model."""


def save(path: str, tensors: Mapping[str, np.ndarray], meta: Mapping) -> None:
    """Writes `tensors` (name -> array) and JSON-able `meta` to `path` atomically."""
    from safetensors.numpy import save_file

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
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=folder)
    os.close(fd)
    try:
        save_file(arrays, tmp, metadata=header)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_meta(path: str) -> dict:
    """The ubdiff metadata of a checkpoint (raises CheckpointError if absent)."""
    from safetensors import safe_open

    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types on bad headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    if META_KEY not in meta:
        raise CheckpointError(f"{path}: a safetensors file, but not written by ubdiff (no '{META_KEY}' metadata)")
    try:
        return json.loads(meta[META_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: corrupt ubdiff metadata ({e})") from None


def load(path: str, expected: Mapping[str, tuple] | None = None, kind: str | None = None):
    """Reads a checkpoint -> (tensors dict, meta dict).

    expected: name -> shape of the tensors the caller needs; each must be
    present with that shape (extra tensors are allowed only if also listed as
    optional by the caller, i.e. they are returned but not checked).
    kind: the model kind recorded in the metadata must match.
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
            if tensors[name].dtype != np.float32:
                raise CheckpointError(f"{path}: tensor {name!r} has dtype {tensors[name].dtype}, expected float32")
    return tensors, meta
