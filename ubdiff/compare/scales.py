"""Sizes and training lengths of a comparison ("plans").

``small``: a laptop or CI machine (2 CPU cores; sizes chosen from per-stage
timings). Measured on a 2-core machine (2026-12-02): every method in 36 min,
4-7 min each (README "Comparing methods"); several times slower on a loaded machine. ``paper``: the paper's
configuration (the published networks, the authors' epochs and diffusion
steps, 10,000 generated pairs for Table 3, OpenFWI's 24,000 / 6,000 maps), for
one GPU. ``tiny``: seconds, for the test that keeps the command working; its
numbers mean nothing.

Data layout of a comparison (one make_dataset folder, samples in this order):
``test_pairs`` held-out real pairs | the ``paired`` training pairs | the other
``maps - paired`` training maps | ``test_maps`` held-out velocity-only maps.
The training maps (m = ``maps``) include the n pairs, as in the authors' split.
Real references: InversionNet is tested on the held-out pairs, seismic FID
against their records, velocity FID against their maps plus the held-out
velocity-only maps.
"""
from __future__ import annotations

import copy

from ..pipeline import paper_hyperparameters

_SMALL = {
    "config": "small",
    "maps": 512, "paired": 64, "test_pairs": 128, "test_maps": 384, "samples": 256,
    # step 1 at 48 epochs (1536 steps over the 512 maps), not 12: at 12 the decoders set every FID
    # (reconstructions of real maps score the generated samples' FID) and UB-Diff's generated pairs
    # trained a worse InversionNet than the 64 real pairs (SSIM 0.435 vs 0.454); at 48, 0.583
    # (w/o opt 0.389), for +3 min of step 1 (measured 2026-12-02, RESULTS.md)
    "autoencoder": {"batch_size": 16, "lr": 5e-4, "lr_decay": 0.9, "save_every": 4,
                    "step1_epochs": 48, "step2_epochs": 40, "freeze": True},
    # a short run at a high lr samples best with a fast EMA (the demo's settings)
    "diffusion": {"steps": 1000, "batch_size": 16, "accum": 2, "lr": 1e-3, "ema": "fixed", "ema_every": 1,
                  "ema_decay": 0.99, "save_every": 250},
    "sampling": {"sampler": "ddpm", "steps": None, "weights": "ema"},
    # the pixel DDPM (methods/ddpm.py): a 2-D U-Net on 70 x 70 maps costs far more per sample than
    # the 1-D U-Net on latents (about 17 s per step of 16 maps, 5.6 s per forward of 16, "small"
    # Unet, measured on the shared 2-core machine at load ~8), so short training and DDIM sampling
    "ddpm": {"config": "small", "steps": 100, "batch_size": 8, "accum": 1, "lr": 1e-3, "ema": "fixed",
             "ema_every": 1, "ema_decay": 0.99, "save_every": 25,
             "sampling": {"sampler": "ddim", "steps": 8, "weights": "ema"}},
    "inversionnet": {"config": "small", "epochs": 10, "batch_size": 16, "lr": 1e-3},
    "physics_pairs": 16, "figure_samples": 4, "fid_batch": 64,
}

_PAPER = {
    "config": "paper",
    # OpenFWI's FlatVel-A: 24,000 training maps, 6,000 test; the n = 1000
    "maps": 24000, "paired": 1000, "test_pairs": 6000, "test_maps": 0, "samples": 10000,
    # the authors' train_EncDec.py (20 x 25 epochs) and fine_tune_Dec_S.py (20 x 50); lr and
    # decay factor per family from the paper (filled in by plan())
    "autoencoder": {"batch_size": 64, "lr": None, "lr_decay": None, "save_every": 10,
                    "step1_epochs": 500, "step2_epochs": 1000, "freeze": True},
    "diffusion": {"steps": 150000, "batch_size": 16, "accum": 2, "lr": 8e-5, "ema": "ema-pytorch",
                  "ema_every": 10, "ema_decay": 0.995, "save_every": 5000},
    # the authors' generation.py: ancestral DDPM, online weights
    "sampling": {"sampler": "ddpm", "steps": None, "weights": "online"},
    # the pixel DDPM: the latent diffusion's schedule around lucidrains' Unet(64, (1, 2, 4, 8)); its
    # Trainer samples with the EMA weights (EMA(beta 0.995, update_every 10): the ema-pytorch rule)
    "ddpm": {"config": "paper", "steps": 150000, "batch_size": 16, "accum": 2, "lr": 8e-5, "ema": "ema-pytorch",
             "ema_every": 10, "ema_decay": 0.995, "save_every": 5000,
             "sampling": {"sampler": "ddpm", "steps": None, "weights": "ema"}},
    # OpenFWI's InversionNet schedule (train.py: 3 blocks of 40 epochs), trained on 10,000 generated pairs
    "inversionnet": {"config": "paper", "epochs": 120, "batch_size": 64, "lr": 1e-4},
    "physics_pairs": 100, "figure_samples": 4, "fid_batch": 64,
}

_TINY = {
    "config": "small",
    "maps": 24, "paired": 4, "test_pairs": 4, "test_maps": 4, "samples": 4,
    "autoencoder": {"batch_size": 4, "lr": 5e-4, "lr_decay": 0.9, "save_every": 1,
                    "step1_epochs": 1, "step2_epochs": 1, "freeze": True},
    "diffusion": {"steps": 2, "batch_size": 4, "accum": 1, "lr": 1e-3, "ema": "fixed", "ema_every": 1,
                  "ema_decay": 0.99, "save_every": 1},
    "sampling": {"sampler": "ddim", "steps": 4, "weights": "ema"},
    "ddpm": {"config": "small", "steps": 2, "batch_size": 4, "accum": 1, "lr": 1e-3, "ema": "fixed",
             "ema_every": 1, "ema_decay": 0.99, "save_every": 1,
             "sampling": {"sampler": "ddim", "steps": 4, "weights": "ema"}},
    "inversionnet": {"config": "small", "epochs": 1, "batch_size": 2, "lr": 1e-3},
    "physics_pairs": 2, "figure_samples": 2, "fid_batch": 8,
}

SCALES = {"small": _SMALL, "paper": _PAPER, "tiny": _TINY}


def _merge(base: dict, over: dict, where: str = "plan") -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k not in out:
            raise ValueError(f"{where}: unknown key {k!r}; known: {', '.join(sorted(out))}")
        if isinstance(out[k], dict):
            if not isinstance(v, dict):
                raise ValueError(f"{where}.{k}: expected a dict, got {v!r}")
            out[k] = _merge(out[k], v, f"{where}.{k}")
        else:
            out[k] = v
    return out


def plan(scale: str = "small", family: str = "flatvel-a", paired: int | None = None, samples: int | None = None,
         overrides: dict | None = None) -> dict:
    """The full plan of a scale: sizes, training lengths and evaluation settings (a plain,
    JSON-serialisable dict). ``paired`` (n) and ``samples`` (N) override the scale's;
    ``overrides`` any other key (nested dicts merge)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    p = _merge(SCALES[scale], overrides or {})
    p["scale"] = scale
    if p["autoencoder"]["lr"] is None or p["autoencoder"]["lr_decay"] is None:
        hp = paper_hyperparameters(family)
        p["autoencoder"]["lr"] = p["autoencoder"]["lr"] or hp["lr"]
        p["autoencoder"]["lr_decay"] = p["autoencoder"]["lr_decay"] or hp["lr_decay"]
    if paired is not None:
        p["paired"] = paired
    if samples is not None:
        p["samples"] = samples
    _check(p)
    return p


def _int(p, key, lo):
    v = p[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"{key} must be an int >= {lo}, got {v!r}")


def _check(p: dict) -> None:
    for key, lo in (("maps", 2), ("paired", 2), ("test_pairs", 2), ("test_maps", 0), ("samples", 2),
                    ("physics_pairs", 0), ("figure_samples", 1), ("fid_batch", 1)):
        _int(p, key, lo)
    if p["paired"] > p["maps"]:
        raise ValueError(f"paired (n = {p['paired']}) cannot exceed the training maps (m = {p['maps']})")
    ae = p["autoencoder"]
    for key in ("batch_size", "save_every", "step1_epochs", "step2_epochs"):
        _int(ae, key, 1)
    if ae["batch_size"] > p["paired"]:
        raise ValueError(f"autoencoder batch_size {ae['batch_size']} exceeds the {p['paired']} pairs")
    d = p["diffusion"]
    for key in ("steps", "batch_size", "accum", "save_every"):
        _int(d, key, 1)
    for where, s in (("sampling", p["sampling"]), ("ddpm.sampling", p["ddpm"]["sampling"])):
        if s["sampler"] not in ("ddpm", "ddim"):
            raise ValueError(f"{where}.sampler must be 'ddpm' or 'ddim', got {s['sampler']!r}")
    for key in ("steps", "batch_size", "accum", "save_every"):
        _int(p["ddpm"], key, 1)
