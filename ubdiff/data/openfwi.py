"""OpenFWI dataset constants, file naming and the official train/test file split.

Published constants (OpenFWI's ``dataset_config.json``; see
specs/velocity_families.md): seismic ``data_min``/``data_max`` per family,
velocity labels 1500..4500 m/s, 500 samples per file. Datasets made by ubdiff
carry their own constants in ``ubdiff_dataset.json`` beside the files
(:func:`load_info` reads either).
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field

from .errors import DataError

FILE_SIZE = 500                     # samples per OpenFWI file
SEISMIC_SHAPE = (5, 1000, 70)       # (shot, time, receiver) of one sample
VELOCITY_SHAPE = (1, 70, 70)        # (channel, depth, lateral) of one sample
META_NAME = "ubdiff_dataset.json"   # constants of a dataset made by ubdiff


@dataclass(frozen=True)
class DatasetInfo:
    """Constants of one dataset (published or made by ubdiff)."""
    name: str
    data_min: float
    data_max: float
    label_min: float = 1500.0
    label_max: float = 4500.0
    file_size: int = FILE_SIZE
    naming: str = "vel"             # "vel": data{i}/model{i}; "fault": seis{P}_1_{i}/vel{P}_1_{i}
    train_files: tuple = field(default=())   # velocity file stems of the official split
    test_files: tuple = field(default=())
    seismic_shape: tuple = SEISMIC_SHAPE

    def to_dict(self):
        return asdict(self)


def _vel_split(n_train, n_total):
    train = tuple(f"model{i}" for i in range(1, n_train + 1))
    test = tuple(f"model{i}" for i in range(n_train + 1, n_total + 1))
    return train, test


def _fault_split(prefixes):
    # 36 files per prefix: vel{P}_1_0..31 train, vel{P}_1_32..35 test.
    train = tuple(f"vel{p}_1_{i}" for p in prefixes for i in range(32))
    test = tuple(f"vel{p}_1_{i}" for p in prefixes for i in range(32, 36))
    return train, test


_RANGES = {  # family: (data_min, data_max) of the published seismic data
    "flatvel-a": (-26.95, 52.77), "flatvel-b": (-27.17, 56.05),
    "curvevel-a": (-27.11, 55.10), "curvevel-b": (-29.04, 57.03),
    "flatfault-a": (-26.10, 50.86), "flatfault-b": (-24.86, 50.28),
    "curvefault-a": (-26.48, 52.32), "curvefault-b": (-24.93, 50.98),
    "style-a": (-24.96, 48.93), "style-b": (-23.76, 46.01),
}


def _published(name):
    dmin, dmax = _RANGES[name]
    if "fault" in name:
        train, test = _fault_split((2, 3, 4) if name.endswith("-a") else (6, 7, 8))
        naming = "fault"
    elif name.startswith("style"):
        train, test = _vel_split(120, 134)
        naming = "vel"
    else:
        train, test = _vel_split(48, 60)
        naming = "vel"
    return DatasetInfo(name, dmin, dmax, naming=naming, train_files=train, test_files=test)


#: The ten 2-D OpenFWI families, keyed by lower-case name ("flatvel-a", ...).
OPENFWI = {name: _published(name) for name in _RANGES}
FAMILIES = tuple(OPENFWI)


def family_key(name: str) -> str:
    """Canonical key of a family name: 'FlatVel_A', 'flatvel-a' -> 'flatvel-a'."""
    key = name.strip().lower().replace("_", "-")
    if key not in OPENFWI:
        raise ValueError(f"unknown OpenFWI family {name!r}; known: {', '.join(FAMILIES)}")
    return key


def info(name: str) -> DatasetInfo:
    """Published constants of an OpenFWI family."""
    return OPENFWI[family_key(name)]


# --- file naming -----------------------------------------------------------
_VEL_RE = re.compile(r"^(?:model|vel)(.*)\.npy$")
_SEIS_RE = re.compile(r"^(?:data|seis)(.*)\.npy$")


def partner_name(filename: str) -> str:
    """Partner of a file name: data3.npy <-> model3.npy, seis2_1_0.npy <-> vel2_1_0.npy."""
    base = os.path.basename(filename)
    for a, b in (("data", "model"), ("model", "data"), ("seis", "vel"), ("vel", "seis")):
        if base.startswith(a) and base.endswith(".npy"):
            return os.path.join(os.path.dirname(filename), b + base[len(a):])
    raise DataError(f"{filename}: not an OpenFWI file name (data*/model*/seis*/vel* .npy)")


def is_velocity_name(filename: str) -> bool:
    return _VEL_RE.match(os.path.basename(filename)) is not None


def is_seismic_name(filename: str) -> bool:
    return _SEIS_RE.match(os.path.basename(filename)) is not None


def velocity_name(i: int) -> str:
    """File name of the i-th (1-based) velocity file of a dataset made by ubdiff."""
    return f"model{i}.npy"


def seismic_name(i: int) -> str:
    return f"data{i}.npy"


# --- constants stored with a dataset made by ubdiff -------------------------
def write_meta(folder: str, meta: dict) -> str:
    """Write ``ubdiff_dataset.json`` atomically (temp file + os.replace)."""
    from .npyio import atomic_path
    path = os.path.join(folder, META_NAME)
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
            f.write("\n")
    return path


def has_meta(folder: str) -> bool:
    """Whether ``folder`` holds a ``ubdiff_dataset.json`` (a dataset made by ubdiff), valid or not."""
    return os.path.lexists(os.path.join(folder, META_NAME))


#: Keys every ubdiff_dataset.json holds (make_dataset and UBDiff.generate write them all).
META_KEYS = ("format", "family", "file_size", "seismic_shape", "velocity_files", "seismic_files",
             "label_min", "label_max", "data_min", "data_max", "complete")


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_count(x, lo=1) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= lo


def validate_meta(meta: dict, path: str, partial: bool = False) -> dict:
    """Check a ``ubdiff_dataset.json`` before anything is read from it; returns it.

    Every key of META_KEYS must be present with the right type; file names
    must be plain names of this folder (no separators, no '..', no absolute
    path) of the right kind, each seismic file the partner of the velocity file
    at the same position; constants finite with min < max. ``complete: false``
    (an interrupted make_dataset) is refused unless ``partial``. Any problem is
    a DataError naming the file and the key.
    """
    def bad(key, why):
        raise DataError(f"{path}: key {key!r} {why}")

    for key in META_KEYS:
        if key not in meta:
            raise DataError(f"{path}: missing key {key!r} (not a dataset written by ubdiff, or damaged)")
    for key in ("format", "family"):
        if not isinstance(meta[key], str):
            bad(key, f"must be a string, got {meta[key]!r}")
    if not isinstance(meta["complete"], bool):
        bad("complete", f"must be true or false, got {meta['complete']!r}")
    if not _is_count(meta["file_size"]):
        bad("file_size", f"must be a positive integer, got {meta['file_size']!r}")
    sh = meta["seismic_shape"]
    if not (isinstance(sh, list) and len(sh) == 3 and all(_is_count(x) for x in sh)):
        bad("seismic_shape", f"must be 3 positive integers [shots, nt, receivers], got {sh!r}")
    names = {}
    for key, is_kind, kind in (("velocity_files", is_velocity_name, "velocity"),
                               ("seismic_files", is_seismic_name, "seismic")):
        files = meta[key]
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            bad(key, f"must be a list of file names, got {files!r}")
        for f in files:
            if os.path.basename(f) != f or f in ("", ".", "..") or "\\" in f or f.startswith("."):
                bad(key, f"names {f!r}: only plain file names inside the dataset folder are allowed")
            if not is_kind(f):
                bad(key, f"names {f!r}, not a {kind} file name (model*/vel*.npy or data*/seis*.npy)")
        if len(set(files)) != len(files):
            bad(key, "lists a file twice")
        names[key] = files
    vel, seis = names["velocity_files"], names["seismic_files"]
    if not vel:
        bad("velocity_files", "is empty")
    if len(seis) > len(vel):
        bad("seismic_files", f"lists {len(seis)} files for {len(vel)} velocity files")
    for s, v in zip(seis, vel):
        if partner_name(v) != s:
            bad("seismic_files", f"pairs {s!r} with {v!r}; the partner of {v!r} is {partner_name(v)!r}")
    for lo, hi, optional in (("label_min", "label_max", False), ("data_min", "data_max", True)):
        a, b = meta[lo], meta[hi]
        if optional and a is None and b is None:
            continue
        if not (_is_number(a) and _is_number(b)):
            bad(lo, f"and {hi!r} must be finite numbers{' (or both null)' if optional else ''}, got {a!r}, {b!r}")
        if not a < b:
            bad(lo, f"must be below {hi!r}, got {a!r} >= {b!r}")
    for key, files in (("file_counts", vel), ("paired_counts", seis)):
        c = meta.get(key)
        if c is not None and not (isinstance(c, list) and len(c) == len(files) and all(_is_count(x) for x in c)):
            bad(key, f"must be {len(files)} positive integers (one per file), got {c!r}")
    if meta.get("file_counts") is not None and meta.get("paired_counts") is not None:
        if any(p > n for p, n in zip(meta["paired_counts"], meta["file_counts"])):
            bad("paired_counts", "exceeds the velocity file's sample count")
    stats = meta.get("file_stats")
    if stats is not None:
        if not isinstance(stats, dict) or not all(
                k in seis and isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v)
                for k, v in stats.items()):
            bad("file_stats", "must map seismic file names to [min, max] pairs of finite numbers")
    if meta["complete"] and seis and meta["data_min"] is None:
        bad("data_min", "is null in a complete dataset with seismic files")
    if not meta["complete"] and not partial:
        raise DataError(f"{path}: dataset incomplete ('complete': false): the run that writes it was interrupted "
                        "or is still running; rerun it to finish, or pass partial=True to read the files "
                        "finished so far")
    return meta


def read_meta(folder: str, partial: bool = False) -> dict | None:
    """The validated ``ubdiff_dataset.json`` of a folder, or None when there is none.

    A damaged file, a missing key, a path leaving the folder, or -- unless
    ``partial`` -- an incomplete dataset is a DataError naming the file.
    """
    from .files import read_json

    path = os.path.join(folder, META_NAME)
    if not os.path.lexists(path):
        return None
    return validate_meta(read_json(path, "dataset constants"), path, partial)


def load_info(folder_or_family: str) -> DatasetInfo:
    """Constants of a published family name, or of a folder made by ubdiff."""
    if os.path.isdir(folder_or_family):
        meta = read_meta(folder_or_family)
        if meta is None:
            raise DataError(f"{folder_or_family}: no {META_NAME}; pass the family name instead")
        if meta.get("data_min") is None:
            raise DataError(f"{folder_or_family}: dataset incomplete (no data_min/data_max yet)")
        return DatasetInfo(
            name=meta["family"], data_min=meta["data_min"], data_max=meta["data_max"],
            label_min=meta["label_min"], label_max=meta["label_max"],
            file_size=meta["file_size"], naming="vel",
            train_files=tuple(os.path.splitext(v)[0] for v in meta["velocity_files"]),
            test_files=(), seismic_shape=tuple(meta["seismic_shape"]))
    return info(folder_or_family)
