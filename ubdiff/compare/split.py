"""The data of a comparison: one simulated dataset (make_dataset) cut into the
training split every method learns from and the held-out real data every
method is evaluated against (layout: ubdiff/compare/scales.py)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass
class Split:
    root: str
    family: str
    train_velocity: object     # m velocity maps (dataset, m/s): the n paired maps included
    train_pairs: object        # the n training pairs
    test_pairs: object         # held-out real pairs
    test_velocity: object      # held-out real velocity maps (the test pairs' maps + velocity-only ones)
    constants: dict            # label_min/label_max (m/s), data_min/data_max (seismic) of the dataset

    @property
    def seismic_range(self) -> tuple:
        return float(self.constants["data_min"]), float(self.constants["data_max"])

    @property
    def velocity_range(self) -> tuple:
        return float(self.constants["label_min"]), float(self.constants["label_max"])

    def sizes(self) -> dict:
        return {"train_maps": len(self.train_velocity), "train_pairs": len(self.train_pairs),
                "test_pairs": len(self.test_pairs), "test_maps": len(self.test_velocity)}


def total_maps(plan: dict) -> int:
    return plan["test_pairs"] + plan["maps"] + plan["test_maps"]


def build(out_dir: str, family: str, plan: dict, seed: int = 0, progress: bool = True) -> Split:
    """Make (or resume, or reuse) the dataset ``out_dir`` for the plan and split it."""
    from ..data import make_dataset

    T, n, m = plan["test_pairs"], plan["paired"], plan["maps"]
    make_dataset(family, total_maps(plan), T + n, out_dir, seed=seed, progress=progress)
    return open_split(out_dir, family, plan)


def open_split(root: str, family: str, plan: dict) -> Split:
    from ..data import OpenFWIDataset, openfwi

    T, n, m, tm = plan["test_pairs"], plan["paired"], plan["maps"], plan["test_maps"]
    vel = OpenFWIDataset.from_folder(root, velocity_only=True)
    pairs = OpenFWIDataset.from_folder(root)   # the first T + n maps (those with seismic)
    if len(vel) != total_maps(plan) or len(pairs) != T + n:
        raise ValueError(f"{root}: holds {len(vel)} maps / {len(pairs)} pairs, the plan needs "
                         f"{total_maps(plan)} / {T + n}")
    meta = openfwi.read_meta(root)
    constants = {k: float(meta[k]) for k in ("label_min", "label_max", "data_min", "data_max")}
    test_v = np.concatenate([np.arange(T), np.arange(T + m, T + m + tm)])
    return Split(root=os.path.abspath(root), family=family,
                 train_velocity=vel.subset(np.arange(T, T + m)),
                 train_pairs=pairs.subset(np.arange(T, T + n)),
                 test_pairs=pairs.subset(np.arange(T)),
                 test_velocity=vel.subset(test_v),
                 constants=constants)
