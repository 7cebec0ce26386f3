"""The autoencoder's learning-rate schedule: the paper's per-family settings and the authors'
WarmupMultiStepLR (stepped per batch), as a pure function of (epoch, batch), so a resumed run
gets the same rates (ubdiff/pipeline.py saves the rule per stage)."""
from __future__ import annotations

from bisect import bisect_right

import numpy as np

from .data import openfwi

#: The paper's per-family optimiser settings of the autoencoder (specs/paper_config.md).
PAPER_LR = {"curvevel-a": 5e-4, "curvefault-a": 5e-4, "style-a": 5e-4}
PAPER_LR_DECAY = {"flatvel-a": 0.9, "flatfault-a": 0.98}

#: Learning-rate rules of the autoencoder stages (:func:`autoencoder_lr`): "multistep" is the
#: authors' (WarmupMultiStepLR of train_EncDec.py / fine_tune_Dec_S.py, OpenFWI's scheduler.py),
#: "per-epoch" (lr * lr_decay ** epoch) ubdiff's earlier rule, which its run folders keep.
LR_RULES = ("multistep", "per-epoch")
LR_MILESTONE_EVERY = 10      # the authors' default milestones: epochs 10, 20, 30, ...
LR_WARMUP_FACTOR = 1e-5      # their warmup_factor (linear warm-up from lr * 1e-5)
_LR_KEYS = ("lr_rule", "lr_milestones", "lr_warmup_epochs", "lr_epoch_batches")


def paper_hyperparameters(family: str) -> dict:
    """{'lr', 'lr_decay'} of the autoencoder for an OpenFWI family, as in the paper; lr_decay is the
    paper's "decay factor", the gamma of the authors' scheduler (applied at every milestone)."""
    key = openfwi.family_key(family)
    return {"lr": PAPER_LR.get(key, 1e-4), "lr_decay": PAPER_LR_DECAY.get(key, 0.995)}


def autoencoder_lr(lr: float, lr_decay: float, epoch: int, batch: int, batches: int, rule: str = "multistep",
                   milestones=None, warmup_epochs: int = 0, epoch_batches: int | None = None) -> float:
    """The learning rate of batch ``batch`` (0-based) of epoch ``epoch`` (0-based) of a stage with
    ``batches`` batches per epoch.

    "multistep", as the authors' WarmupMultiStepLR, which steps after every batch: at iteration
    i = epoch * batches + batch, lr * w(i) * lr_decay ** (number of milestone iterations <= i).
    A milestone m (in epochs) is iteration m * E, the warm-up is W = warmup_epochs * E
    iterations, w(i) = 1e-5 (1 - i/W) + i/W for i < W, else 1; E = epoch_batches, by default
    ``batches`` (the authors' fine_tune_Dec_S.py counts in batches of the step-1 loader instead).
    milestones: None = every 10 epochs (their default), an int k = every k epochs, or a list.
    "per-epoch": lr * lr_decay ** epoch.
    """
    if rule == "per-epoch":
        return lr * lr_decay ** epoch
    if rule != "multistep":
        raise ValueError(f"lr rule must be one of {LR_RULES}, got {rule!r}")
    E = batches if epoch_batches is None else int(epoch_batches)
    i = epoch * batches + batch
    if milestones is None or isinstance(milestones, (int, np.integer)):
        k = int(milestones or LR_MILESTONE_EVERY)
        passed = i // (k * E)
    else:
        passed = bisect_right([E * int(m) for m in milestones], i)
    warm = warmup_epochs * E
    w = 1.0
    if i < warm:
        alpha = i / warm
        w = LR_WARMUP_FACTOR * (1 - alpha) + alpha
    return lr * w * lr_decay ** passed


def _check_lr_settings(rule, milestones, warmup_epochs, epoch_batches) -> None:
    if rule not in LR_RULES:
        raise ValueError(f"lr_rule must be one of {LR_RULES}, got {rule!r}")
    if milestones is not None:
        if isinstance(milestones, (int, np.integer)) and not isinstance(milestones, bool):
            if milestones < 1:
                raise ValueError(f"lr_milestones as a period must be a positive int, got {milestones}")
        else:
            ms = list(milestones)
            if not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= 1 for x in ms) \
                    or ms != sorted(ms):
                raise ValueError(f"lr_milestones must be increasing positive epoch numbers, got {milestones!r}")
    for name, v, lo in (("lr_warmup_epochs", warmup_epochs, 0), ("lr_epoch_batches", epoch_batches, 1)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo):
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    if rule == "per-epoch" and (milestones is not None or warmup_epochs or epoch_batches is not None):
        raise ValueError("lr_milestones, lr_warmup_epochs and lr_epoch_batches belong to the 'multistep' rule")
