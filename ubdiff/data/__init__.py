"""OpenFWI data: reading, normalising, generating and writing velocity / seismic datasets.

- :mod:`.openfwi`   per-family constants, file naming, official train/test split
- :mod:`.dataset`   memory-mapped paired reading, split files, unbalanced split
- :mod:`.normalize` OpenFWI normalisation to [-1, 1] and inverses
- :mod:`.files`     regular-file reads, atomic file and folder writes, stale temporaries
- :mod:`.npyio`     validated memmap reads, chunked NaN/Inf scans, atomic writes
- :mod:`.families`  seeded generators of the ten 2-D families
- :mod:`.builder`   writing a simulated OpenFWI-layout dataset (resumable)
"""
from .errors import DataError
from .openfwi import FAMILIES, OPENFWI, DatasetInfo, info, load_info
from .normalize import (Normalizer, denormalize_seismic, denormalize_velocity,
                        normalize_seismic, normalize_velocity)
from .npyio import check_finite, open_npy, write_npy
from .dataset import (OpenFWIDataset, Subset, UnbalancedSplit, official_files, pair_files,
                      read_split_file, unbalanced_split)
from .families import generate_velocity

__all__ = [
    "DataError", "FAMILIES", "OPENFWI", "DatasetInfo", "info", "load_info",
    "Normalizer", "normalize_velocity", "denormalize_velocity", "normalize_seismic",
    "denormalize_seismic", "check_finite", "open_npy", "write_npy",
    "OpenFWIDataset", "Subset", "UnbalancedSplit", "official_files", "pair_files",
    "read_split_file", "unbalanced_split", "generate_velocity", "make_dataset",
]


def make_dataset(*args, **kwargs):
    """See :func:`ubdiff.data.builder.make_dataset` (imported lazily: matplotlib)."""
    from .builder import make_dataset as _md
    return _md(*args, **kwargs)
