"""UB-Diff end to end: ``ubdiff.UBDiff`` holds the co-latent autoencoder, the
latent diffusion and the dataset normalisation constants.

    import ubdiff
    m = ubdiff.UBDiff("small", seed=0)
    m.fit_autoencoder(velocity, epochs=10)            # step 1: all m maps (Eq. 2)
    m.finetune(vel_pairs, seis_pairs, epochs=10)      # step 2: n pairs (Eqs. 3-4), F = 1
    m.fit_diffusion(velocity, steps=1000)             # step 3: diffusion on z = E(velocity)
    vel, seis = m.sample(8, seed=1)                   # new pairs, m/s and physical amplitudes
    m.generate(1000, "generated/")                    # OpenFWI-layout .npy files
    m.save("run/"); m = ubdiff.UBDiff.load("run/")    # resumes exactly

Data are NumPy arrays (memmaps welcome) in physical units, or ubdiff.data
datasets; both are read a batch at a time (ubdiff/pipeline_data.py).

Exact resume: every random choice is keyed by numbers saved with the model --
an epoch's shuffling by (seed, stage, epoch), a diffusion step's batch by
(seed, step), its t and noise by the diffusion's (seed, step) -- the learning
rate is a function of (epoch, batch) (:func:`autoencoder_lr`, its rule saved
per stage) and the EMA rule is saved with the diffusion, so ``fit(2 epochs)``
equals ``fit(1); save; load; fit(1)`` bit for bit.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time

import numpy as np

from . import checkpoint
from .data import Normalizer, openfwi
from .models import ae_spec
from .models import diffusion as diff_mod
from .models.autoencoder import CoLatentAutoencoder
from .models.diffusion import LatentDiffusion
from .lr_schedule import (LR_RULES, PAPER_LR, PAPER_LR_DECAY, _check_lr_settings,  # noqa: F401 (public here too)
                          _LR_KEYS, autoencoder_lr, paper_hyperparameters)
from .pipeline_data import Source, batches, dataset_constants

FORMAT = "ubdiff-pipeline-1"
GENERATED_FORMAT = "ubdiff-generated-1"
STATE_FILE = "ubdiff.json"
AE_FILE = "autoencoder.safetensors"
DIFF_FILE = "diffusion.safetensors"
RUN_FILES = (STATE_FILE, AE_FILE, DIFF_FILE)
STAGES = {"step1": 1, "step2": 2, "wo_opt": 3, "diffusion": 4, "seis_first": 5, "vel_after": 6}
#: Autoencoder stages and the ones that read no seismic; "seis_first" + "vel_after" are the
#: seismic-first variant of the paper's Table 5 (Eq. 3 before Eq. 2, :meth:`UBDiff.fit_seismic_first`).
AE_STAGES = ("step1", "step2", "wo_opt", "seis_first", "vel_after")
_VELOCITY_ONLY_STAGES = ("step1", "vel_after")

#: Preset configurations: autoencoder preset + diffusion overrides (seq_len = the latent size).
CONFIGS = {
    "paper": {"autoencoder": "paper", "diffusion": "paper"},
    "small": {"autoencoder": "small", "diffusion": "small"},
}


def _agreed(comm, fn, what: str):
    """fn() on every rank of ``comm`` with its errors agreed on (Comm.agree: raised on all ranks
    together, none left waiting in a collective); fn() itself without several ranks."""
    if comm is None or comm.size == 1:
        return fn()
    return comm.agree(fn, what)



def resolve_config(config) -> dict:
    """'paper' | 'small' | {'autoencoder': preset|dict, 'diffusion': preset|dict} -> full configs.

    The diffusion's sequence length is the autoencoder's latent size (z is
    flattened to one channel); a different explicit ``seq_len`` is an error.
    """
    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown UBDiff config {config!r}; choose from {sorted(CONFIGS)} or pass a dict")
        config = CONFIGS[config]
    if not isinstance(config, dict):
        raise TypeError(f"config must be 'paper', 'small' or a dict, got {type(config).__name__}")
    unknown = set(config) - {"autoencoder", "diffusion"}
    if unknown:
        raise ValueError(f"unknown UBDiff config keys {sorted(unknown)}; use 'autoencoder' and 'diffusion'")
    ae = ae_spec.make_config(config.get("autoencoder", "paper"))
    d = config.get("diffusion", "paper")
    dcfg = diff_mod.resolve_config(d)
    explicit = d.get("seq_len") if isinstance(d, dict) else None
    if explicit is not None and int(explicit) != ae["latent"]:
        raise ValueError(f"diffusion seq_len {explicit} must equal the autoencoder's latent size {ae['latent']}")
    if int(dcfg["channels"]) != 1:
        raise ValueError("the latent diffusion works on z flattened to one channel: channels must be 1")
    dcfg["seq_len"] = ae["latent"]
    dcfg["dim_mults"] = list(dcfg["dim_mults"])
    return {"autoencoder": ae, "diffusion": dcfg}


def _npy_complete(path: str, shape: tuple) -> bool:
    """True if ``path`` is a complete float32 .npy file of exactly ``shape``."""
    from .data import DataError, open_npy
    if not os.path.exists(path):
        return False
    try:
        return open_npy(path, shape[1:]).shape == tuple(shape)
    except DataError:
        return False


_SEED_MAX = 2 ** 64 - 1   # seeds key Philox streams as uint64: larger ones would wrap


def _seed(x, name: str = "seed") -> int:
    """A seed as an int in 0..2**64-1 (the C core's uint64), else ValueError naming it."""
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or not 0 <= int(x) <= _SEED_MAX:
        raise ValueError(f"{name} must be an int in 0..2**64-1, got {x!r}")
    return int(x)


DEVICES = ("auto", "cpu", "cuda")


def _check_device(device) -> None:
    """ValueError naming the argument unless ``device`` is one of DEVICES (before anything is allocated)."""
    if not isinstance(device, str) or device not in DEVICES:
        raise ValueError(f"UBDiff: device must be 'cpu', 'cuda' or 'auto', got {device!r}")


WEIGHTS = ("online", "ema")


def _use_ema(weights) -> bool:
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be 'online' or 'ema', got {weights!r}")
    return weights == "ema"


def _bar(total, desc, progress):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)


def _check_state(fn: str, info: dict) -> dict:
    """Validate a ubdiff.json (read from ``fn``) before anything is allocated; returns its resolved config."""
    def bad(msg):
        raise checkpoint.CheckpointError(f"{fn}: {msg}")

    if info.get("format") != FORMAT:
        bad(f"format {info.get('format')!r}, expected {FORMAT!r}")
    for key in ("config", "seed", "constants", "state", "history"):
        if key not in info:
            bad(f"missing key {key!r}")
    try:
        _seed(info["seed"])
    except ValueError as e:
        bad(str(e))
    mb = info.get("diffusion_max_batch", 16)
    if isinstance(mb, bool) or not isinstance(mb, int) or not 1 <= mb <= 1 << 16:
        bad(f"'diffusion_max_batch' must be an int in 1..65536, got {mb!r}")
    cfg = info["config"]
    if not isinstance(cfg, dict) or not isinstance(cfg.get("autoencoder"), dict) \
            or not isinstance(cfg.get("diffusion"), dict):
        bad("'config' must hold an 'autoencoder' and a 'diffusion' object")
    try:
        config = resolve_config(cfg)
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        bad(f"bad 'config' ({type(e).__name__}: {e})")
    c = info["constants"]
    if not isinstance(c, dict) or not {"label_min", "label_max", "data_min", "data_max"} <= set(c):
        bad("'constants' must hold label_min, label_max, data_min and data_max")

    def num(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    if not (num(c["label_min"]) and num(c["label_max"]) and c["label_min"] < c["label_max"]):
        bad(f"constants need finite label_min < label_max, got {c['label_min']!r}, {c['label_max']!r}")
    if not (c["data_min"] is None and c["data_max"] is None) and not (
            num(c["data_min"]) and num(c["data_max"]) and c["data_min"] < c["data_max"]):
        bad(f"constants need finite data_min < data_max (or both null), got {c['data_min']!r}, {c['data_max']!r}")
    st = info["state"]
    if not isinstance(st, dict):
        bad("'state' must be an object")
    for stage in AE_STAGES:   # the seismic-first stages may be missing (older runs): load() adds them
        if stage not in st and stage in ("seis_first", "vel_after"):
            continue
        e = st.get(stage, {}).get("epoch") if isinstance(st.get(stage), dict) else None
        if isinstance(e, bool) or not isinstance(e, int) or e < 0:
            bad(f"'state' needs {stage!r}: {{'epoch': a non-negative int}}, got {st.get(stage)!r}")
    h = info["history"]
    if not isinstance(h, dict) or not all(isinstance(v, list) for v in h.values()):
        bad("'history' must map stage names to lists")
    return config


class UBDiff:
    """UB-Diff: a co-latent autoencoder (velocity <-> z <-> seismic) and a latent diffusion on z.

    config: "small" (laptops, CI, demos), "paper" (the published sizes), or a
    dict {'autoencoder': preset or dict of ints, 'diffusion': preset or dict}.
    device: "cpu", "cuda" or "auto" (default: the GPU when this build has CUDA and one
    is visible, else the CPU); both networks are created on it (``self.device`` says
    which). Checkpoints hold the same bytes whichever device wrote them:
    ``UBDiff.load(path, device=...)`` restores a run on either device.
    seed: initialisation of both networks and every shuffle / noise draw.
    max_batch: the largest autoencoder batch (default: the config's, 16 small / 64 paper);
    diffusion_max_batch: the largest diffusion micro-batch (default 16).

    Attributes: ``autoencoder`` (CoLatentAutoencoder), ``diffusion``
    (LatentDiffusion), ``constants`` (label_min/label_max in m/s, data_min/data_max
    of the seismic amplitudes), ``history`` (losses per epoch / step of each stage).
    """

    def __init__(self, config="small", device: str = "auto", seed: int = 0, max_batch: int | None = None,
                 diffusion_max_batch: int = 16):
        _check_device(device)
        seed = _seed(seed)
        self.seed = seed
        self.config = resolve_config(config)
        over = {} if max_batch is None else {"max_batch": int(max_batch)}
        self.autoencoder = CoLatentAutoencoder(self.config["autoencoder"], seed=self.seed, device=device, **over)
        self.device = self.autoencoder.device   # "auto" resolved once: the diffusion goes where the autoencoder went
        self.config["autoencoder"] = dict(self.autoencoder.config)
        self.diffusion = LatentDiffusion(self.config["diffusion"], seed=self.seed, max_batch=diffusion_max_batch,
                                         device=self.device)
        self.constants = {"label_min": 1500.0, "label_max": 4500.0, "data_min": None, "data_max": None}
        self.state = {stage: {"epoch": 0} for stage in AE_STAGES}
        self.history = {**{stage: [] for stage in AE_STAGES}, "diffusion": []}

    def __repr__(self):
        return (f"UBDiff(autoencoder {self.autoencoder.num_parameters():,} parameters, diffusion "
                f"{self.diffusion.num_parameters():,}; epochs step1/step2/wo_opt "
                f"{self.state['step1']['epoch']}/{self.state['step2']['epoch']}/{self.state['wo_opt']['epoch']}, "
                f"diffusion steps {self.diffusion.step}; device {self.device})")

    # ---- constants ---------------------------------------------------------------
    def set_constants(self, info) -> None:
        """Dataset normalisation constants from a DatasetInfo, a dict, a family name or a ubdiff folder."""
        if isinstance(info, str):
            info = openfwi.load_info(info)
        norm = Normalizer(info)
        if not (norm.label_max > norm.label_min and norm.data_max > norm.data_min):
            raise ValueError(f"constants need label_min < label_max and data_min < data_max, got {info}")
        self.constants = dict(label_min=norm.label_min, label_max=norm.label_max,
                              data_min=norm.data_min, data_max=norm.data_max)

    def _norm(self, need_seismic: bool = False) -> Normalizer:
        c = dict(self.constants)
        if c["data_min"] is None:
            if need_seismic:
                raise RuntimeError("seismic normalisation constants are unknown: call finetune()/fit_wo_opt() "
                                   "on paired data first, or set_constants(...)")
            c["data_min"], c["data_max"] = -1.0, 1.0   # unused for velocity
        return Normalizer(c)

    def _adopt_constants(self, src: Source) -> None:
        """Seismic constants for a paired source: the dataset's own, else its min/max."""
        have = self.constants["data_min"] is not None
        theirs = dataset_constants(src.ds) if src.ds is not None else None
        if src.norm is not None:   # the dataset normalises on read: its constants must be ours
            if have and any(abs(theirs[k] - self.constants[k]) > 1e-6 * max(1.0, abs(theirs[k])) for k in theirs):
                raise ValueError(f"the dataset normalises with constants {theirs}, the model uses {self.constants}")
            self.constants.update(theirs)
            return
        if have:
            return
        if theirs is not None and theirs.get("data_min") is not None:
            self.constants.update(theirs)
        else:
            lo, hi = src.seismic_range()
            if not hi > lo:
                raise ValueError("seismic records are constant; cannot normalise them")
            self.constants.update(data_min=float(lo), data_max=float(hi))

    def _source(self, velocity, seismic=None, need_seismic=False, what="velocity"):
        c = self.autoencoder.config
        src = Source(velocity, seismic, need_seismic=need_seismic, nt=c["nt"], shots=c["shots"], nr=c["nr"],
                     what=what)
        if src.norm is not None and not need_seismic:
            n = src.norm
            if (n.label_min, n.label_max) != (self.constants["label_min"], self.constants["label_max"]):
                raise ValueError("the dataset normalises velocity with other limits than the model's")
        return src

    # ---- autoencoder stages --------------------------------------------------------
    def _check_batch(self, batch_size):
        mb = self.autoencoder.config["max_batch"]
        bs = mb if batch_size is None else int(batch_size)
        if not 2 <= bs <= mb:
            raise ValueError(f"batch_size must be in 2..{mb} (the autoencoder's max_batch; create UBDiff(..., "
                             f"max_batch={bs}) for larger batches), got {bs}")
        return bs

    def _lr_settings(self, stage, lr_schedule: dict) -> dict:
        """The stage's lr rule and its settings: those given (not None), else the ones saved with the
        stage, else the defaults. A stage trained before rules were saved used "per-epoch"."""
        st = self.state[stage]
        saved = {k: st[k] for k in _LR_KEYS if k in st}
        if "lr_rule" not in saved:
            saved = {"lr_rule": "per-epoch" if st["epoch"] > 0 else "multistep", "lr_milestones": None,
                     "lr_warmup_epochs": 0, "lr_epoch_batches": None}
        given = {k: v for k, v in lr_schedule.items() if v is not None}
        if given.get("lr_rule", saved["lr_rule"]) != saved["lr_rule"]:   # another rule: its own defaults
            saved = {"lr_milestones": None, "lr_warmup_epochs": 0, "lr_epoch_batches": None}
        cfg = dict(saved, **given)
        _check_lr_settings(cfg["lr_rule"], cfg["lr_milestones"], cfg["lr_warmup_epochs"], cfg["lr_epoch_batches"])
        ms = cfg["lr_milestones"]   # plain ints for ubdiff.json
        cfg["lr_milestones"] = None if ms is None else int(ms) if isinstance(ms, (int, np.integer)) else \
            [int(m) for m in ms]
        for k in ("lr_warmup_epochs", "lr_epoch_batches"):
            cfg[k] = None if cfg[k] is None else int(cfg[k])
        return cfg

    def _run_epochs(self, stage, src, epochs, batch_size, lr, lr_decay, weight_decay, progress, train: dict,
                    lr_schedule: dict, comm=None, sync_bn: bool = False):
        """``epochs`` epochs of an autoencoder stage; ``train``: the mode / freeze of its steps.
        ``comm`` with several ranks: data-parallel (ubdiff/distributed/ubdiff_train.py);
        ``sync_bn``: BatchNorm statistics over all its ranks (no effect in one process)."""
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
        if not (lr > 0 and 0 < lr_decay <= 1 and weight_decay >= 0):
            raise ValueError(f"need lr > 0, 0 < lr_decay <= 1, weight_decay >= 0; got {lr}, {lr_decay}, {weight_decay}")
        st = self.state[stage]
        sched = self._lr_settings(stage, lr_schedule)
        if epochs == 0:
            return []
        st.update(sched)
        if st["epoch"] == 0:
            self.autoencoder.reset_optimizer()   # a fresh optimiser per stage, as the authors' scripts
        vn = self._norm(stage not in _VELOCITY_ONLY_STAGES)
        ae, dp = self.autoencoder, None
        if comm is not None and comm.size > 1:
            from .distributed.ubdiff_train import AutoencoderStage
            dp = AutoencoderStage(ae, comm, sync_bn=bool(sync_bn), **train)
        out = []
        with contextlib.ExitStack() as stack:
            if dp is not None:   # an error on one rank alone ends the job (MPI_Abort): none left waiting
                stack.enter_context(comm.guard(f"data-parallel {stage}"))
                stack.callback(dp.close)   # on agreed errors too: the BatchNorm hook (sync_bn) leaves the model
            for _ in range(int(epochs)):
                e = st["epoch"]
                sums, k = {}, 0
                bl = batches(src.n, batch_size, self.seed, e, STAGES[stage])
                if dp is not None:
                    bl = dp.epoch_batches(bl)
                bar = _bar(len(bl), f"{stage} epoch {e + 1}", progress and (dp is None or comm.is_root))

                def lr_at(j, nb=len(bl), e=e):   # stepped per batch, as the authors' scheduler
                    return autoencoder_lr(lr, lr_decay, e, j, nb, sched["lr_rule"], sched["lr_milestones"],
                                          sched["lr_warmup_epochs"], sched["lr_epoch_batches"])
                for j, idx in enumerate(bl):
                    lr_e = lr_at(j)
                    part = idx if dp is None else dp.local(idx)   # a rank reads its slice of the batch

                    def read(part=part):
                        return (src.velocity(part, vn),
                                src.seismic(part, vn) if stage not in _VELOCITY_ONLY_STAGES else None)
                    if dp is None:
                        losses = ae.train_step(*read(), lr=lr_e, weight_decay=weight_decay, **train)
                    else:   # this rank's share of the global batch's losses (the shares sum to them)
                        losses = dp.step(read, len(idx), lr_e, weight_decay)
                    if dp is None and not math.isfinite(losses["total"]):   # several ranks: all at the epoch's end
                        bar.close()
                        raise FloatingPointError(f"{stage}: loss became {losses['total']} at epoch {e}; lower lr")
                    k += 1
                    for key in ("total", "velocity", "seismic"):
                        if math.isfinite(losses[key]):
                            sums[key] = sums.get(key, 0.0) + losses[key]
                    bar.update(1)   # under several ranks: about the global loss (rank 0's share x ranks)
                    bar.set_postfix(loss=f"{sums['total'] / k * (1 if dp is None else comm.size):.4f}")
                bar.close()
                if dp is not None:   # every rank computed the same keys; their shares summed
                    keys = sorted(sums)
                    tot = dp.total(np.array([sums[key] for key in keys]))
                    sums = dict(zip(keys, tot.tolist()))
                    if not math.isfinite(sums.get("total", 0.0)):   # the global loss: every rank raises
                        from .distributed.comm import on_all_ranks
                        raise on_all_ranks(FloatingPointError(f"{stage}: loss became {sums['total']} in epoch "
                                                              f"{e}; lower lr"))
                rec = {"epoch": e, "lr": lr_at(0), **{key: val / max(k, 1) for key, val in sums.items()}}
                self.history[stage].append(rec)
                out.append(rec)
                st["epoch"] = e + 1
        return out

    def fit_autoencoder(self, velocity, epochs: int, batch_size: int | None = None, lr: float = 1e-4,
                        lr_decay: float = 0.995, weight_decay: float = 1e-4, progress: bool = True,
                        lr_rule: str | None = None, lr_milestones=None, lr_warmup_epochs: int | None = None,
                        lr_epoch_batches: int | None = None, comm=None, sync_bn: bool = False) -> list:
        """Step 1 (Eq. 2): train E, the velocity head and D_v on all m velocity maps (fc_s +
        batch_norm_s run too, for their running statistics, as in the authors' forward).

        velocity: (m, 1, 70, 70) in m/s (array or memmap), or a dataset
        (OpenFWIDataset, Subset, UnbalancedSplit). ``epochs`` more epochs are run,
        continuing the stage's epoch count. Learning rate (:func:`autoencoder_lr`): by
        default the authors' rule, lr * lr_decay ** (milestones passed), milestones every
        10 epochs (``lr_milestones``: a list of epochs or a period), optional linear
        warm-up over ``lr_warmup_epochs`` epochs, stepped per batch; ``lr_rule="per-epoch"``:
        lr * lr_decay ** epoch. The rule and its settings are saved with the stage (None:
        keep them). The paper's lr / lr_decay: :func:`paper_hyperparameters`. Returns the
        per-epoch mean losses and the lr of each epoch's first batch.

        ``comm`` (ubdiff.distributed.world() under mpirun): data-parallel over its ranks, each
        reading its slice of every batch (ubdiff/distributed/ubdiff_train.py); also finetune,
        fit_wo_opt, fit_seismic_first, fit_velocity_after and fit_diffusion. ``sync_bn=True``
        (those autoencoder stages too): BatchNorm statistics over all ranks (SyncBatchNorm),
        so a step equals one process's on the global batch up to float rounding; by default
        they are per rank, as PyTorch DDP.
        """
        bs = self._check_batch(batch_size)
        src = _agreed(comm, lambda: self._source(velocity, what="fit_autoencoder"), "opening the data")
        return self._run_epochs("step1", src, epochs, bs, lr, lr_decay, weight_decay, progress, dict(mode="step1"),
                                dict(lr_rule=lr_rule, lr_milestones=lr_milestones, lr_warmup_epochs=lr_warmup_epochs,
                                     lr_epoch_batches=lr_epoch_batches), comm, sync_bn)

    def finetune(self, velocity_pairs, seismic_pairs=None, epochs: int = 1, freeze: bool = True,
                 batch_size: int | None = None, lr: float = 1e-4, lr_decay: float = 0.995,
                 weight_decay: float = 1e-4, progress: bool = True, lr_rule: str | None = None,
                 lr_milestones=None, lr_warmup_epochs: int | None = None,
                 lr_epoch_batches: int | None = None, comm=None, sync_bn: bool = False) -> list:
        """Step 2 (Eqs. 3-4) on the n pairs: loss (1 - F) l_v + l_s.

        freeze=True (F = 1) trains only the seismic head and D_s (E, the velocity
        head and D_v stay bit-identical, BatchNorm in eval mode); freeze=False
        trains everything. Pairs: arrays (n, 1, 70, 70) m/s and (n, shots, T, nr)
        (T a multiple of the model's nt), or one paired dataset. The seismic
        constants are taken from the dataset, else from the pairs' min/max.
        Learning rate as :meth:`fit_autoencoder`, milestones in epochs of the pairs;
        the authors' fine_tune_Dec_S.py counts its milestones in batches of the step-1
        loader: ``lr_epoch_batches=ceil(m / batch_size)`` reproduces that.
        """
        bs = self._check_batch(batch_size)
        src = _agreed(comm, lambda: self._source(velocity_pairs, seismic_pairs, need_seismic=True, what="finetune"),
                      "opening the data")
        self._adopt_constants(src)
        return self._run_epochs("step2", src, epochs, bs, lr, lr_decay, weight_decay, progress,
                                dict(mode="step2", freeze=bool(freeze)),
                                dict(lr_rule=lr_rule, lr_milestones=lr_milestones, lr_warmup_epochs=lr_warmup_epochs,
                                     lr_epoch_batches=lr_epoch_batches), comm, sync_bn)

    def fit_wo_opt(self, velocity_pairs, seismic_pairs=None, epochs: int = 1, batch_size: int | None = None,
                   lr: float = 1e-4, lr_decay: float = 0.995, weight_decay: float = 1e-4,
                   progress: bool = True, lr_rule: str | None = None, lr_milestones=None,
                   lr_warmup_epochs: int | None = None, lr_epoch_batches: int | None = None, comm=None,
                   sync_bn: bool = False) -> list:
        """The "UB-Diff w/o opt" ablation: the whole network in one step, pairs only, from scratch.

        On its first epoch the autoencoder is re-initialised (from ``seed``):
        whatever steps 1-2 trained is discarded. Learning rate as :meth:`fit_autoencoder`.
        """
        bs = self._check_batch(batch_size)
        src = _agreed(comm, lambda: self._source(velocity_pairs, seismic_pairs, need_seismic=True, what="fit_wo_opt"),
                      "opening the data")
        self._adopt_constants(src)
        sched = dict(lr_rule=lr_rule, lr_milestones=lr_milestones, lr_warmup_epochs=lr_warmup_epochs,
                     lr_epoch_batches=lr_epoch_batches)
        self._lr_settings("wo_opt", sched)   # bad settings fail before the re-initialisation
        if self.state["wo_opt"]["epoch"] == 0 and epochs > 0:
            self.autoencoder.init(self.seed)
        return self._run_epochs("wo_opt", src, epochs, bs, lr, lr_decay, weight_decay, progress, dict(mode="wo_opt"),
                                sched, comm, sync_bn)

    def fit_seismic_first(self, velocity_pairs, seismic_pairs=None, epochs: int = 1,
                          batch_size: int | None = None, lr: float = 1e-4, lr_decay: float = 0.995,
                          weight_decay: float = 1e-4, progress: bool = True, lr_rule: str | None = None,
                          lr_milestones=None, lr_warmup_epochs: int | None = None,
                          lr_epoch_batches: int | None = None, comm=None, sync_bn: bool = False) -> list:
        """First stage of the seismic-first variant (the paper's Table 5: Eq. 3 before Eq. 2):
        E, the seismic head and D_s trained on l_s of the n pairs (the velocity head and D_v
        are not run); then :meth:`fit_velocity_after`. Pairs and learning rate as :meth:`finetune`."""
        bs = self._check_batch(batch_size)
        src = _agreed(comm, lambda: self._source(velocity_pairs, seismic_pairs, need_seismic=True,
                                                 what="fit_seismic_first"), "opening the data")
        self._adopt_constants(src)
        return self._run_epochs("seis_first", src, epochs, bs, lr, lr_decay, weight_decay, progress,
                                dict(mode="seis_first"),
                                dict(lr_rule=lr_rule, lr_milestones=lr_milestones, lr_warmup_epochs=lr_warmup_epochs,
                                     lr_epoch_batches=lr_epoch_batches), comm, sync_bn)

    def fit_velocity_after(self, velocity, epochs: int, batch_size: int | None = None, lr: float = 1e-4,
                           lr_decay: float = 0.995, weight_decay: float = 1e-4, progress: bool = True,
                           lr_rule: str | None = None, lr_milestones=None, lr_warmup_epochs: int | None = None,
                           lr_epoch_batches: int | None = None, comm=None, sync_bn: bool = False) -> list:
        """Second stage of the seismic-first variant: the velocity head and D_v trained on l_v
        of all m maps with E frozen (eval mode) -- Eq. 2 after Eq. 3, the mirror of step 2 with
        F = 1 (the seismic head and D_s are not run). Data and learning rate as
        :meth:`fit_autoencoder`."""
        bs = self._check_batch(batch_size)
        src = _agreed(comm, lambda: self._source(velocity, what="fit_velocity_after"), "opening the data")
        return self._run_epochs("vel_after", src, epochs, bs, lr, lr_decay, weight_decay, progress,
                                dict(mode="vel_after"),
                                dict(lr_rule=lr_rule, lr_milestones=lr_milestones, lr_warmup_epochs=lr_warmup_epochs,
                                     lr_epoch_batches=lr_epoch_batches), comm, sync_bn)

    # ---- latent diffusion ------------------------------------------------------------
    def encode(self, velocity, progress: bool = False, comm=None) -> np.ndarray:
        """z (N, 1, latent) of velocity maps (m/s array or dataset), frozen encoder in eval mode.
        ``comm`` with several ranks: the batches split among them, z gathered on every rank."""
        src = _agreed(comm, lambda: self._source(velocity, what="encode"), "opening the data")
        vn = self._norm()
        mb = self.autoencoder.config["max_batch"]
        if comm is not None and comm.size > 1:
            from .distributed.ubdiff_train import encode_sharded
            return encode_sharded(lambda idx: self.autoencoder.encode(src.velocity(idx, vn), training=False)[:, None],
                                  src.n, mb, (1, self.autoencoder.latent_dim), comm)
        z = np.empty((src.n, 1, self.autoencoder.latent_dim), np.float32)
        bar = _bar(src.n, "encoding", progress)
        for s in range(0, src.n, mb):
            idx = np.arange(s, min(s + mb, src.n))
            z[idx, 0] = self.autoencoder.encode(src.velocity(idx, vn), training=False)
            bar.update(len(idx))
        bar.close()
        return z

    def fit_diffusion(self, velocity, steps: int, batch_size: int = 16, accum: int = 2, lr: float = 8e-5,
                      ema_every: int | None = None, ema_decay: float | None = None, max_grad_norm: float = 1.0,
                      progress: bool = True, ema: str | None = None, comm=None) -> list:
        """Step 3: v-prediction diffusion on z = E(velocity) of all m maps (encoder frozen, eval mode).

        ``steps`` more optimiser steps, each on batch_size x accum latents drawn
        without replacement by an RNG keyed by (seed, step). Returns the losses.
        EMA of the weights: ``ema="ema-pytorch"`` (the authors' ema-pytorch 0.2.3:
        copies up to step 101, then a decay warm-up to ``ema_decay``) or ``"fixed"``
        (``ema_decay`` after every ``ema_every``-th step); None keeps the run's rule
        (new runs: "ema-pytorch"; runs saved before the rule was: "fixed"); ema_every /
        ema_decay None keep its values (10 / 0.995). See ubdiff/models/diffusion.py.
        ``comm`` with several ranks: data-parallel, each rank on its slice of every step's
        batch with that slice's noise (batch_size a multiple of the ranks;
        ubdiff/distributed/ubdiff_train.py); the losses returned are the global batch's.
        """
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {steps!r}")
        if not 1 <= int(batch_size) <= self.diffusion.max_batch:
            raise ValueError(f"batch_size must be in 1..{self.diffusion.max_batch} (diffusion_max_batch), "
                             f"got {batch_size}; use accum for larger effective batches")
        if ema is not None or ema_every is not None or ema_decay is not None:
            self.diffusion.set_ema(ema, update_every=ema_every, beta=ema_decay)
        dp = None
        if comm is not None and comm.size > 1:
            from .distributed.ubdiff_train import diffusion_stage, diffusion_step
            dp, accum = diffusion_stage(self.diffusion, comm, int(batch_size), int(accum))
            progress = progress and comm.is_root
        z = self.encode(velocity, progress=progress, comm=comm)
        n, per = len(z), int(batch_size) * int(accum)
        out = []
        with contextlib.ExitStack() as stack:
            if dp is not None:   # an error on one rank alone ends the job (MPI_Abort): none left waiting
                stack.enter_context(comm.guard("data-parallel diffusion"))
            bar = _bar(int(steps), "diffusion", progress)
            run = 0.0
            for i in range(int(steps)):
                k = self.diffusion.step
                rng = np.random.default_rng([self.seed, STAGES["diffusion"], k])
                idx = np.sort(rng.choice(n, per, replace=n < per))
                if dp is None:
                    r = self.diffusion.train_step(z[idx], accum=int(accum), lr=lr, max_grad_norm=max_grad_norm)
                else:   # r["loss"]: this rank's share of the step's loss
                    r = {"loss": diffusion_step(dp, z, idx, accum, k,
                                                dict(lr=lr, max_grad_norm=max_grad_norm, step=k))}
                if dp is None and not math.isfinite(r["loss"]):   # several ranks: all of them after the loop
                    bar.close()
                    raise FloatingPointError(f"diffusion: loss became {r['loss']} at step {k}; lower lr")
                out.append(float(r["loss"]))
                shown = r["loss"] * (1 if dp is None else comm.size)   # several ranks: about the global loss
                run = shown if i == 0 else 0.98 * run + 0.02 * shown
                bar.update(1)
                bar.set_postfix(loss=f"{run:.4f}")
        bar.close()
        if dp is not None:   # the shares summed over the ranks: the global batches' losses
            out = comm.allreduce_sum(np.array(out, np.float64)).tolist()
            bad = [i for i, x in enumerate(out) if not math.isfinite(x)]
            if bad:   # the global losses: every rank raises
                from .distributed.comm import on_all_ranks
                at = self.diffusion.step - len(out) + bad[0]
                raise on_all_ranks(FloatingPointError(f"diffusion: loss became {out[bad[0]]} at step {at}; "
                                                      "lower lr"))
        self.history["diffusion"].extend(out)
        return out

    # ---- generation --------------------------------------------------------------------
    def sample_latents(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None,
                       eta: float = 0.0, first: int = 0, weights: str = "online",
                       progress: bool = False) -> np.ndarray:
        """z (n, 1, latent) by reverse diffusion. Sample j's randomness is keyed by (seed, first + j),
        so drawing 1000 latents in one call or as [0, 500) + [500, 1000) uses the same noise and gives
        the same latents up to float rounding (the U-Net's sgemm rounds differently for another batch
        size); the same call on the same machine and thread count gives the same bits (README,
        "Reproducibility"). weights: "online" (default) or "ema", see :meth:`sample`."""
        from ._native import lib

        use_ema = _use_ema(weights)
        d = self.diffusion
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        seed = _seed(seed)
        if isinstance(first, bool) or not isinstance(first, (int, np.integer)) or not 0 <= first <= _SEED_MAX - n:
            raise ValueError(f"first must be an int in 0..2**64-1-n, got {first!r}")
        if first == 0 and not progress:
            return d.sample(int(n), seed=seed, sampler=sampler, steps=steps, eta=eta, use_ema=use_ema)
        if sampler not in diff_mod.SAMPLERS:
            raise ValueError(f"sampler must be one of {sorted(diff_mod.SAMPLERS)}, got {sampler!r}")
        if sampler == "ddpm" and steps not in (None, d.timesteps):
            raise ValueError(f"ddpm always takes all T = {d.timesteps} steps; use sampler='ddim' for fewer")
        s = diff_mod.SAMPLERS[sampler]
        steps = d.timesteps if steps is None else int(steps)
        if steps < 1 or not (eta >= 0 and math.isfinite(eta)):
            raise ValueError(f"need steps >= 1 and a finite eta >= 0, got {steps}, {eta}")
        nsteps = lib.diffusion_sampler_steps(d._h, s, steps)
        mb = d.max_batch
        bar = _bar(nsteps * ((n + mb - 1) // mb), f"sampling ({sampler})", progress)
        try:
            return d.sample(int(n), seed=seed, sampler=sampler, steps=steps, eta=eta, use_ema=use_ema,
                            first=int(first), progress=(lambda done, total: bar.update(1)) if progress else False)
        finally:
            bar.close()

    def decode(self, z, normalized: bool = False):
        """(velocity (n,1,70,70) m/s, seismic (n,shots,nt,nr) physical) of latents z (n, latent) or (n,1,latent);
        normalized=True returns the decoders' [-1, 1] outputs instead."""
        lat = self.autoencoder.latent_dim
        a = np.asarray(z)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"decode: z must be a real array, got dtype {a.dtype}")
        if not ((a.ndim == 2 and a.shape[1] == lat) or (a.ndim == 3 and a.shape[1:] == (1, lat))) or len(a) == 0:
            raise ValueError(f"decode: z must have shape (n, {lat}) or (n, 1, {lat}) with n >= 1, got {a.shape}")
        z = np.asarray(a.reshape(len(a), lat), np.float32)
        if not np.isfinite(z).all():
            raise ValueError(f"decode: z holds NaN or Inf (latent {int(np.flatnonzero(~np.isfinite(z).all(1))[0])})")
        norm = None if normalized else self._norm(need_seismic=True)
        ae = self.autoencoder
        mb = ae.config["max_batch"]
        # filled chunk by chunk, each chunk denormalised as it comes (elementwise: the same bits as
        # on the whole set), so the float64 temporaries of the inverse transforms stay chunk-sized
        v = np.empty((len(z),) + openfwi.VELOCITY_SHAPE, np.float32)
        s = np.empty((len(z),) + ae.seismic_shape, np.float32)
        for a in range(0, len(z), mb):
            vc, sc = ae.decode(z[a:a + mb])
            v[a:a + mb] = vc if normalized else norm.velocity_inverse(vc)
            s[a:a + mb] = sc if normalized else norm.seismic_inverse(sc)
        return v, s

    def sample(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None, eta: float = 0.0,
               decode: bool = True, progress: bool = False, weights: str = "online"):
        """n new pairs: (velocity (n,1,70,70) in m/s, seismic (n,shots,nt,nr) in physical amplitude).

        ancestral DDPM over all T steps (the paper), or DDIM with ``steps`` steps
        (eta = 0: deterministic). Same seed -> same pairs. decode=False returns the
        latents (n, 1, latent) only. weights: "online" (default) samples with the
        trained weights, as the authors' generation.py (``trainer.model.diffusion.sample``),
        which made the paper's data; "ema" with their moving average (their Trainer1D's
        training previews).
        """
        _use_ema(weights)
        if decode:
            self._norm(need_seismic=True)   # fail before sampling, not after
        z = self.sample_latents(n, seed=seed, sampler=sampler, steps=steps, eta=eta, weights=weights,
                                progress=progress)
        return self.decode(z) if decode else z

    def generate(self, n: int, out_dir: str, seed: int = 0, sampler: str = "ddpm", steps: int | None = None,
                 eta: float = 0.0, file_size: int = openfwi.FILE_SIZE, progress: bool = True,
                 weights: str = "online", client=None, threads: int | None = None) -> dict:
        """Write n generated pairs as OpenFWI files: model{i}.npy (<=500,1,70,70) m/s and
        data{i}.npy (<=500,shots,nt,nr), plus ubdiff_dataset.json (constants, generation
        settings; readable by ubdiff.data.OpenFWIDataset.from_folder).
        Pair j has the same noise whatever ``file_size``; its latent and decoded values agree
        across file sizes up to float rounding (the batch size changes sgemm's blocking), and
        bit for bit for the same file_size, machine and thread count. weights: "online" | "ema",
        as :meth:`sample`. Returns the metadata.

        The set is written into a temporary sibling folder that replaces ``out_dir`` in one
        atomic step: an interruption leaves the previous content of ``out_dir`` (an older
        generation, complete) or the new generation, never a mix of the two. Other files in
        ``out_dir`` are kept. Overwriting needs room for both generations until the swap; a
        folder holding OpenFWI data not made by generate is refused, not overwritten.

        Each file pair is one shard, written atomically into the temporary sibling
        (``.NAME.part-KEY``, KEY naming this model and these settings), which survives an
        interruption: the same call again writes only the missing file pairs
        (ubdiff.data.files.resumable_folder). ``client``: a ``distributed.Client``; then the
        file pairs are tasks on the Dask cluster's workers (``threads`` ubdiff threads each;
        default: the worker machine's cores shared by its workers), which must see
        ``out_dir``'s parent folder at the same path; with the same thread count the files
        equal a single-process run's bit for bit (ubdiff/distributed/generate_shards.py)."""
        from .data import DataError
        from .data.files import resumable_folder

        _use_ema(weights)
        self._norm(need_seismic=True)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if isinstance(file_size, bool) or not isinstance(file_size, (int, np.integer)) or file_size < 1:
            raise ValueError(f"file_size must be a positive int, got {file_size!r}")
        seed = _seed(seed)
        if os.path.isdir(out_dir) and any(openfwi.is_velocity_name(f) or openfwi.is_seismic_name(f)
                                          for f in os.listdir(out_dir)):
            old = openfwi.read_meta(out_dir, partial=True)
            if old is None or old.get("format") != GENERATED_FORMAT:
                raise DataError(f"{out_dir}: holds OpenFWI data files not written by UBDiff.generate; "
                                "generate into another folder (nothing was changed)")
        counts = [min(file_size, n - s) for s in range(0, n, file_size)]
        c = self.autoencoder.config
        meta = dict(format=GENERATED_FORMAT, family="generated", maps=int(n), paired=int(n), seed=seed,
                    sampler=sampler, steps=steps, eta=float(eta), weights=weights, file_size=int(file_size),
                    seismic_shape=[c["shots"], c["nt"], c["nr"]],
                    velocity_files=[openfwi.velocity_name(i) for i in range(1, len(counts) + 1)],
                    seismic_files=[openfwi.seismic_name(i) for i in range(1, len(counts) + 1)],
                    file_counts=counts, paired_counts=counts, complete=False,
                    diffusion_steps=self.diffusion.step, config=self.config, **self.constants)
        shards = [(i, sum(counts[:i - 1]), cnt) for i, cnt in enumerate(counts, 1)]
        plan = {"job": "UBDiff.generate", "model": self.fingerprint(),
                "max_batch": [c["max_batch"], self.diffusion.max_batch],
                **{k: meta[k] for k in ("maps", "seed", "sampler", "steps", "eta", "weights", "file_size")}}

        def owned(name):   # what a previous generation wrote: replaced as a whole
            return name == openfwi.META_NAME or openfwi.is_velocity_name(name) or openfwi.is_seismic_name(name)

        def done(folder, i, cnt):
            return all(_npy_complete(os.path.join(folder, f), (cnt,) + shape) for f, shape in
                       ((openfwi.velocity_name(i), openfwi.VELOCITY_SHAPE),
                        (openfwi.seismic_name(i), tuple(meta["seismic_shape"]))))

        def keep(folder):   # an interrupted generation is worth resuming once a file pair is finished
            return any(done(folder, i, cnt) for i, _, cnt in shards)

        t0 = time.perf_counter()
        with resumable_folder(out_dir, owned, plan, keep=keep) as (tmp, resumed):
            todo = [s for s in shards if not (resumed and done(tmp, s[0], s[2]))]
            if client is None:
                for i, first, cnt in todo:
                    self._write_generated(tmp, i, first, cnt, seed, sampler, steps, eta, weights, progress)
            else:
                from .distributed.generate_shards import generate_sharded
                generate_sharded(client, self, tmp, todo, seed, sampler, steps, eta, weights, threads, progress)
            from .distributed.generate_shards import drop_model_copy
            drop_model_copy(tmp)   # what a killed distributed run may have left; not part of the output
            meta.update(complete=True, seconds=round(time.perf_counter() - t0, 3))
            openfwi.write_meta(tmp, meta)
        return meta

    def _write_generated(self, folder: str, i: int, first: int, count: int, seed: int, sampler: str, steps,
                         eta: float, weights: str, progress: bool = False) -> None:
        """File pair i of a generation: pairs [first, first + count) into model{i}.npy / data{i}.npy."""
        from .data import write_npy
        z = self.sample_latents(count, seed=seed, sampler=sampler, steps=steps, eta=eta, first=first,
                                weights=weights, progress=progress)
        v, s = self.decode(z)
        write_npy(os.path.join(folder, openfwi.velocity_name(i)), v)
        write_npy(os.path.join(folder, openfwi.seismic_name(i)), s)

    def fingerprint(self) -> str:
        """A hash of everything sampling and decoding read: both networks' weights and
        statistics, the EMA weights, the configs and the normalisation constants."""
        import hashlib
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps([self.config, self.constants], sort_keys=True, default=str).encode())
        for buf in (self.autoencoder.flat("param"), self.autoencoder.flat("buf"), self.diffusion.flat("param"),
                    self.diffusion.flat("ema")):
            h.update(np.ascontiguousarray(buf).data)
        return h.hexdigest()

    # ---- checkpoints -------------------------------------------------------------------
    def save(self, path: str) -> None:
        """One folder: autoencoder.safetensors, diffusion.safetensors (weights, EMA, optimiser state)
        and ubdiff.json (config, constants, epoch counters, history).

        Atomic as a set: the three files are written into a temporary sibling folder that
        replaces ``path`` in one step (ubdiff.data.files.atomic_folder), so an interrupted
        save leaves the previous complete run or the new complete run, never a mix. Other
        files kept in ``path`` survive; temporaries of a killed save are removed by the next
        one. The three files share a random ``save_id`` that load() checks."""
        import secrets

        from .data.files import atomic_folder

        save_id = secrets.token_hex(8)
        info = {"format": FORMAT, "save_id": save_id, "config": self.config, "seed": self.seed,
                "constants": self.constants, "state": self.state, "history": self.history,
                "diffusion_max_batch": self.diffusion.max_batch}
        with atomic_folder(path, lambda name: name in RUN_FILES) as tmp:
            self.autoencoder.save(os.path.join(tmp, AE_FILE), meta={"save_id": save_id})
            self.diffusion.save(os.path.join(tmp, DIFF_FILE), extra_meta={"save_id": save_id})
            with open(os.path.join(tmp, STATE_FILE), "w") as f:
                json.dump(info, f, indent=1)
                f.flush()
                os.fsync(f.fileno())

    @classmethod
    def load(cls, path: str, device: str = "auto") -> "UBDiff":
        """A UBDiff restored from :meth:`save` on ``device`` ("cpu", "cuda" or "auto", as
        :class:`UBDiff`); training continues exactly where it stopped. A run saved on one
        device loads on the other (the files hold the same bytes whichever device wrote them).

        ubdiff.json is validated (keys, types, ranges) before anything is allocated, and
        the two checkpoints must belong to it (same save_id and configs); any problem is
        a CheckpointError naming the file."""
        from .data.files import read_json, recover_folder

        _check_device(device)
        recover_folder(path)   # finish a folder swap a kill interrupted
        fn = os.path.join(path, STATE_FILE)
        if not os.path.lexists(fn):
            raise checkpoint.CheckpointError(f"{path}: no {STATE_FILE} (not a UBDiff folder)")
        info = read_json(fn, "UBDiff state", checkpoint.CheckpointError)
        config = _check_state(fn, info)
        self = cls.__new__(cls)
        self.seed = int(info["seed"])
        self.config = config
        ae_path, diff_path = os.path.join(path, AE_FILE), os.path.join(path, DIFF_FILE)
        ae_meta, diff_meta = checkpoint.read_meta(ae_path), checkpoint.read_meta(diff_path)   # headers only
        sid = info.get("save_id")
        if sid is not None:
            for p, got in ((ae_path, (ae_meta.get("user") or {}).get("save_id")), (diff_path, diff_meta.get("save_id"))):
                if got != sid:
                    raise checkpoint.CheckpointError(f"{p}: belongs to another save (save_id {got!r}) than {fn} "
                                                     f"({sid!r}); the run folder is a mix of two runs")
        for p, got, want in ((ae_path, ae_meta.get("config"), config["autoencoder"]),
                             (diff_path, diff_meta.get("config"), config["diffusion"])):
            if got != want:
                raise checkpoint.CheckpointError(f"{p}: its config {got} differs from the one in {fn} ({want})")
        self.autoencoder = CoLatentAutoencoder.load(ae_path, device=device)
        self.device = self.autoencoder.device
        self.diffusion = LatentDiffusion.load(diff_path, max_batch=int(info.get("diffusion_max_batch", 16)),
                                              device=self.device)
        self.constants, self.state, self.history = info["constants"], info["state"], info["history"]
        for stage in AE_STAGES:   # runs saved before the seismic-first stages existed
            self.state.setdefault(stage, {"epoch": 0})
            self.history.setdefault(stage, [])
        return self

    # ---- the authors' checkpoints ---------------------------------------------------------
    @classmethod
    def from_official_state_dict(cls, ae_state: dict, diffusion_state: dict, config="paper",
                                 ema_state: dict | None = None, constants=None, seed: int = 0,
                                 device: str = "auto") -> "UBDiff":
        """A UBDiff holding the authors' weights: ``ae_state`` is their VSNet state_dict,
        ``diffusion_state`` their GaussianDiffusion1D state_dict (Unet1D under 'model.',
        schedule buffers checked against ours), ``ema_state`` optionally the EMA's
        weights (same keys; default: the weights themselves). NumPy arrays in, no PyTorch.
        See ubdiff/official/ (and :meth:`from_official` for their files). device: as :class:`UBDiff`."""
        from . import official
        m = cls(config, seed=seed, device=device)
        official.load_into(m, ae_state, diffusion_state, ema_state)
        if constants is not None:
            m.set_constants(constants)
        return m

    @classmethod
    def from_official(cls, diffusion, autoencoder=None, weights: str = "ema", config="paper", constants=None,
                      trust: bool = False, device: str = "auto") -> "UBDiff":
        """The authors' files as they write them (Trainer1D ``model-N.pt``; their VSNet
        checkpoint, default: the autoencoder inside ``diffusion``): ubdiff.official.load."""
        from . import official
        return official.load(diffusion, autoencoder, weights=weights, config=config, constants=constants,
                             trust=trust, device=device)

    def official_state_dict(self) -> tuple:
        """(VSNet state_dict, GaussianDiffusion1D state_dict) under the authors' names, NumPy arrays."""
        from . import official
        return official.export(self)
