"""What the seismic-encoder baselines share: the three networks (co-latent
autoencoder for its heads and decoders, seismic encoder, latent diffusion), a
run folder saved atomically as a set, the diffusion stage on a fixed set of
latents, and sampling.

Randomness is keyed as in ubdiff.pipeline: an epoch's shuffle by (seed,
stage, epoch), a diffusion step's batch by (seed, stage, step), its t and
noise by the diffusion's own (seed, step), so a run resumes exactly.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from .. import checkpoint
from ..models.autoencoder import CoLatentAutoencoder
from ..models.diffusion import LatentDiffusion
from ..models.seis_encoder import SeismicEncoder, config_for_autoencoder
from ..pipeline import autoencoder_lr, resolve_config

AE_FILE, ENC_FILE, DIFF_FILE, STATE_FILE = ("autoencoder.safetensors", "seis_encoder.safetensors",
                                            "diffusion.safetensors", "baseline.json")
RUN_FILES = (AE_FILE, ENC_FILE, DIFF_FILE, STATE_FILE)
DIFFUSION_STAGE = 4   # the key of the diffusion's batch draws, as ubdiff.pipeline's


def bar(total, desc, progress):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False, disable=not progress)


def check_pairs(name, vel, seis, n_min=2):
    if vel is not None and seis is not None and len(vel) != len(seis):
        raise ValueError(f"{name}: {len(vel)} velocity maps but {len(seis)} seismic records")
    n = len(seis) if seis is not None else len(vel)
    if n < n_min:
        raise ValueError(f"{name}: needs at least {n_min} samples (BatchNorm batch statistics), got {n}")
    return n


class Normalised:
    """One modality of paired data in physical units (a dataset, or arrays: anything
    ubdiff.pipeline_data.Source reads), seen as normalised arrays a batch at a time:
    ``view[idx]`` for an index array or a slice; records subsampled to the model's nt."""

    def __init__(self, src, norm, modality: str):
        self.src, self.norm, self.modality = src, norm, modality

    def __len__(self):
        return self.src.n

    def __getitem__(self, idx):
        idx = np.arange(self.src.n)[idx] if isinstance(idx, slice) else np.asarray(idx)
        if self.modality == "seismic":
            return self.src.seismic(idx, self.norm)
        return self.src.velocity(idx, self.norm)


def normalised_pairs(model, pairs, seismic=None, constants=None, what="pairs"):
    """(velocity view, seismic view) of paired data for a baseline ``model`` (its autoencoder's
    record shape), normalised with ``constants`` (label_min/max, data_min/max; default: the
    dataset's own)."""
    from ..data import Normalizer
    from ..pipeline_data import Source, dataset_constants

    c = model.autoencoder.config
    src = Source(pairs, seismic, need_seismic=True, nt=c["nt"], shots=c["shots"], nr=c["nr"], what=what)
    if constants is None:
        constants = dataset_constants(src.ds) if src.ds is not None else None
        if constants is None or constants.get("data_min") is None:
            raise ValueError(f"{what}: give the normalisation constants (label_min/max, data_min/max)")
    norm = Normalizer(dict(constants))
    return Normalised(src, norm, "velocity"), Normalised(src, norm, "seismic")


class LatentBaseline:
    """Base of SDSeismic and MTDiffusion. config: "small" | "paper" | a UBDiff
    config dict; the seismic encoder follows the autoencoder's sizes."""

    KIND = "?"
    STAGE = 0   # the key of this method's epoch shuffles

    def __init__(self, config="small", seed: int = 0, max_batch: int | None = None, diffusion_max_batch: int = 16,
                 device: str = "cpu"):
        if device not in ("cpu", "auto", "cuda"):
            raise ValueError(f"{type(self).__name__}: device must be 'cpu', 'cuda' or 'auto', got {device!r}")
        self.seed = int(seed)
        self.config = resolve_config(config)
        over = {} if max_batch is None else {"max_batch": int(max_batch)}
        self.autoencoder = CoLatentAutoencoder(self.config["autoencoder"], seed=self.seed, device=device, **over)
        self.config["autoencoder"] = dict(self.autoencoder.config)
        ae = self.autoencoder.config
        self.encoder = SeismicEncoder(config_for_autoencoder(ae), seed=self.seed, max_batch=ae["max_batch"],
                                      device=self.autoencoder.device)
        self.diffusion = LatentDiffusion(self.config["diffusion"], seed=self.seed, max_batch=diffusion_max_batch,
                                         device=self.autoencoder.device)
        if self.diffusion.sample_shape != (1, ae["latent"]):
            raise ValueError(f"{type(self).__name__}: the diffusion's samples {self.diffusion.sample_shape} must be "
                             f"(1, latent = {ae['latent']})")
        self.epoch = 0
        self.history = {"autoencoder": [], "diffusion": []}

    @property
    def max_batch(self) -> int:
        return int(self.autoencoder.config["max_batch"])

    def _batches(self, n, batch_size, epoch):
        """Index batches of one epoch: a permutation keyed by (seed, stage, epoch), the last
        partial batch dropped unless it is the only one (BatchNorm needs >= 2 samples)."""
        order = np.random.default_rng([self.seed, self.STAGE, epoch]).permutation(n)
        nb = max(1, n // batch_size)
        return [np.sort(order[i * batch_size:(i + 1) * batch_size]) for i in range(nb)]

    def _check_batch(self, batch_size, n):
        bs = self.max_batch if batch_size is None else int(batch_size)
        if not 2 <= bs <= self.max_batch:
            raise ValueError(f"batch_size must be in 2..{self.max_batch} (max_batch), got {batch_size}")
        return min(bs, n)

    @staticmethod
    def _lr(lr, lr_decay, epoch, j, nb):
        return autoencoder_lr(lr, lr_decay, epoch, j, nb)

    # ---- the diffusion stage --------------------------------------------------------------
    def latents(self, *data) -> np.ndarray:
        """z (N, 1, latent) the diffusion trains on (eval mode); defined by each method."""
        raise NotImplementedError

    def fit_diffusion(self, *data, steps: int, batch_size: int = 16, accum: int = 2, lr: float = 8e-5,
                      ema: str | None = None, ema_every: int | None = None, ema_decay: float | None = None,
                      max_grad_norm: float = 1.0, progress: bool = True) -> list:
        """``steps`` more v-prediction steps on the method's latents (encoders frozen, eval mode),
        as UBDiff.fit_diffusion: batch_size x accum latents per step, drawn by (seed, stage, step)."""
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {steps!r}")
        if not 1 <= int(batch_size) <= self.diffusion.max_batch:
            raise ValueError(f"batch_size must be in 1..{self.diffusion.max_batch} (diffusion_max_batch), "
                             f"got {batch_size}")
        if ema is not None or ema_every is not None or ema_decay is not None:
            self.diffusion.set_ema(ema, update_every=ema_every, beta=ema_decay)
        z = self.latents(*data)
        n, per = len(z), int(batch_size) * int(accum)
        out, b = [], bar(int(steps), "diffusion", progress)
        for _ in range(int(steps)):
            k = self.diffusion.step
            rng = np.random.default_rng([self.seed, DIFFUSION_STAGE, k])
            idx = np.sort(rng.choice(n, per, replace=n < per))
            r = self.diffusion.train_step(z[idx], accum=int(accum), lr=lr, max_grad_norm=max_grad_norm)
            if not math.isfinite(r["loss"]):
                b.close()
                raise FloatingPointError(f"diffusion: loss became {r['loss']} at step {k}; lower lr")
            out.append(float(r["loss"]))
            b.update(1)
        b.close()
        self.history["diffusion"].extend(out)
        return out

    def sample_latents(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None,
                       eta: float = 0.0, weights: str = "online") -> np.ndarray:
        """z (n, latent) by reverse diffusion (weights "online" or "ema")."""
        if weights not in ("online", "ema"):
            raise ValueError(f"weights must be 'online' or 'ema', got {weights!r}")
        z = self.diffusion.sample(int(n), seed=seed, sampler=sampler, steps=steps, eta=eta,
                                  use_ema=weights == "ema")
        return z.reshape(len(z), -1)

    def decode(self, z, velocity: bool, seismic: bool):
        """(velocity | None, seismic | None) of latents z (n, latent), normalised, eval mode, in batches."""
        z = np.asarray(z, np.float32).reshape(len(z), -1)
        mb, vs, ss = self.max_batch, [], []
        for s in range(0, len(z), mb):
            v, sz = self.autoencoder.decode(z[s:s + mb], velocity=velocity, seismic=seismic)
            vs.append(v)
            ss.append(sz)
        return (np.concatenate(vs) if velocity else None), (np.concatenate(ss) if seismic else None)

    # ---- the run folder ----------------------------------------------------------------------
    def save(self, path: str) -> None:
        """One folder, replaced as a set (ubdiff.data.files.atomic_folder): the autoencoder, the
        seismic encoder and the diffusion checkpoints and a JSON state (config, seed, epochs, history)."""
        from ..data.files import atomic_folder

        info = {"kind": self.KIND, "config": self.config, "seed": self.seed, "epoch": self.epoch,
                "history": self.history, "diffusion_max_batch": self.diffusion.max_batch}
        with atomic_folder(path, lambda name: name in RUN_FILES) as tmp:
            self.autoencoder.save(os.path.join(tmp, AE_FILE))
            self.encoder.save(os.path.join(tmp, ENC_FILE))
            self.diffusion.save(os.path.join(tmp, DIFF_FILE))
            with open(os.path.join(tmp, STATE_FILE), "w") as f:
                json.dump(info, f, indent=1)

    @classmethod
    def load(cls, path: str, device: str = "cpu"):
        """A run restored from :meth:`save`; training continues where it stopped."""
        from ..data.files import read_json, recover_folder

        recover_folder(path)
        fn = os.path.join(path, STATE_FILE)
        if not os.path.lexists(fn):
            raise checkpoint.CheckpointError(f"{path}: no {STATE_FILE} (not a {cls.__name__} run folder)")
        info = read_json(fn, f"{cls.__name__} state", checkpoint.CheckpointError)
        if info.get("kind") != cls.KIND:
            raise checkpoint.CheckpointError(f"{fn}: holds a {info.get('kind')!r} run, expected {cls.KIND!r}")
        self = cls.__new__(cls)
        self.seed, self.config = int(info["seed"]), info["config"]
        self.autoencoder = CoLatentAutoencoder.load(os.path.join(path, AE_FILE), device=device)
        self.encoder = SeismicEncoder.load(os.path.join(path, ENC_FILE), max_batch=self.max_batch,
                                           device=self.autoencoder.device)
        self.diffusion = LatentDiffusion.load(os.path.join(path, DIFF_FILE),
                                              max_batch=int(info.get("diffusion_max_batch", 16)),
                                              device=self.autoencoder.device)
        self.epoch, self.history = int(info["epoch"]), info["history"]
        return self
