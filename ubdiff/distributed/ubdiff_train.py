"""UB-Diff's autoencoder stages and latent diffusion, data-parallel over MPI ranks.

    mpirun -n 2 python -m ubdiff train-autoencoder --data data/ --run run/ --epochs 10
    mpirun -n 2 python -m ubdiff finetune --data data/ --run run/ --epochs 10
    mpirun -n 2 python -m ubdiff train-diffusion --data data/ --run run/ --steps 5000

``UBDiff.fit_autoencoder / finetune / fit_wo_opt / fit_diffusion(..., comm=)``
run through the replicas below and :class:`.DataParallel` (one all-reduce of the
flat gradient buffer per optimiser step) when ``comm`` has several ranks. Every
rank visits the global batches a single process would (the same seeded rules of
ubdiff/pipeline.py) and reads only its contiguous slice of each from the
memory-mapped data.

Autoencoder: the all-reduce covers the slice of the gradient buffer the stage
trains (``trained_slice``: step 2 with F = 1 trains only head_s and D_s).
By default BatchNorm batch statistics are each rank's own and the running
statistics rank 0's, broadcast after every step, as PyTorch DDP without
SyncBatchNorm: a step equals a single-process step on the global batch only up
to that. ``sync_bn=True`` (``--sync-bn``; SyncBatchNorm) takes the statistics of
every training-mode BatchNorm (E, D_v, both heads) over all ranks
(CoLatentAutoencoder.set_bn_sync), so a step equals the single-process step on
the global batch up to float rounding. A global batch must give every rank 2
samples (the C core's training-mode check is per rank): an epoch's last batch
that cannot is dropped under several ranks (a single process keeps it).

Diffusion (no BatchNorm): rank r's slice holds positions [first, first + n/R) of
the step's global batch of n = batch_size x accum latents, and draws those
positions' t and noise (``LatentDiffusion.forward_backward(first=)``), so R ranks
compute the single-process gradient up to the order of float additions; gradient
clipping, Adam and the EMA then act on the summed gradient, as in one process.
The latents z = E(velocity) are encoded in the single-process batches, split
among the ranks and gathered (the same bits as one process).
"""
from __future__ import annotations

import numpy as np

from .comm import Comm
from .data_parallel import DataParallel
from .sampler import shard, shard_bounds


def _cpu(model, what):
    if model.device != "cpu":   # InversionNet has the NCCL path (ubdiff/distributed/nccl.py); these not yet
        raise ValueError(f"data-parallel {what} needs the model on the CPU (zero-copy gradient views; the "
                         f"NCCL path for GPUs covers InversionNet only so far), it is on {model.device!r}")


class AutoencoderReplica:
    """The co-latent autoencoder in one training mode, in DataParallel's model protocol."""

    def __init__(self, ae, mode: str, freeze: bool = False, gammas=(1.0, 1.0, 1.0, 1.0)):
        _cpu(ae, "autoencoder training")
        self.ae, self.mode, self.freeze, self.gammas = ae, mode, bool(freeze), tuple(gammas)
        self.trained = ae.trained_slice(mode, self.freeze)

    def zero_grad(self):
        self.ae.zero_grad()

    def forward_backward(self, vel, seis=None, loss_scale: float = 1.0):
        """The local batch's losses (LOSS_KEYS order, unscaled); the trained gradients are
        those of loss_scale x the local mean loss."""
        from ..models.autoencoder import LOSS_KEYS
        losses = self.ae.forward_backward(vel, seis, mode=self.mode, freeze=self.freeze, gammas=self.gammas)
        if loss_scale != 1.0:
            self.ae.flat("grad")[self.trained] *= np.float32(loss_scale)
        return tuple(losses[k] for k in LOSS_KEYS)

    def apply_update(self, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
        self.ae.apply_update(self.mode, self.freeze, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def flat(self, kind):
        buf = self.ae.flat(kind)
        return buf[self.trained] if kind == "grad" else buf   # only the trained part is all-reduced

    def bn_stats(self):
        return self.ae.flat("buf")

    def set_bn_sync(self, allreduce):
        self.ae.set_bn_sync(allreduce)


class DiffusionReplica:
    """The latent diffusion in DataParallel's model protocol."""

    def __init__(self, diffusion):
        _cpu(diffusion, "diffusion training")
        self.d = diffusion

    def zero_grad(self):
        self.d.zero_grad()

    def forward_backward(self, z0, loss_scale: float = 1.0, accum: int = 1, step: int = 0, first: int = 0):
        loss = self.d.forward_backward(z0, accum=accum, step=step, first=first)
        if loss_scale != 1.0:
            self.d.flat("grad")[:] *= np.float32(loss_scale)
        return (loss,)

    def apply_update(self, **kw):
        self.last = self.d.apply_update(**kw)

    def flat(self, kind):
        return self.d.flat(kind)


class AutoencoderStage:
    """One autoencoder stage's data-parallel steps: what UBDiff._run_epochs calls under comm."""

    def __init__(self, ae, comm: Comm, mode: str, freeze: bool = False, sync_bn: bool = False):
        self.comm = comm
        self.dp = DataParallel(AutoencoderReplica(ae, mode, freeze), comm, sync_bn=sync_bn)

    def epoch_batches(self, bl: list) -> list:
        """The single-process batches of an epoch that give every rank 2 samples."""
        return [b for b in bl if len(b) >= 2 * self.comm.size]

    def local(self, idx):
        return shard(idx, self.comm.rank, self.comm.size)

    def step(self, read, n_global: int, lr: float, weight_decay: float) -> dict:
        """One step on read() -> (velocity, seismic or None), this rank's slice of the global
        batch (read inside the step: a failed read is agreed on, DataParallel.step); returns
        this rank's share of the global batch's mean losses."""
        from ..models.autoencoder import LOSS_KEYS
        share = self.dp.step(read, n_global, dict(lr=lr, weight_decay=weight_decay))
        return dict(zip(LOSS_KEYS, (float(x) for x in share)))

    def total(self, sums: np.ndarray) -> np.ndarray:
        """The ranks' shares summed (in place)."""
        return self.comm.allreduce_sum(sums)

    def close(self):
        self.dp.close()


def diffusion_stage(diffusion, comm: Comm, batch_size: int, accum: int):
    """(DataParallel, the local accum) of a data-parallel diffusion run, after checking that
    the global batch of batch_size x accum splits into equal local micro-batches."""
    R = comm.size

    def check():   # the same verdict on every rank, raised on all of them (comm.agree)
        if batch_size % R:
            raise ValueError(f"batch_size {batch_size} must be a multiple of the {R} ranks (each rank takes "
                             f"batch_size / {R} latents of every micro-batch)")
    comm.agree(check, "data-parallel diffusion")
    return DataParallel(DiffusionReplica(diffusion), comm), int(accum)


def diffusion_step(dp: DataParallel, z, idx, accum: int, step: int, update: dict) -> float:
    """One data-parallel diffusion step on the global batch idx (sorted positions into z):
    this rank's share of the step's mean loss."""
    comm = dp.comm
    first, _ = shard_bounds(len(idx), comm.rank, comm.size)
    local = shard(idx, comm.rank, comm.size)
    share = dp.step(lambda: (np.ascontiguousarray(z[local]),), len(idx), update,
                    dict(accum=accum, step=step, first=first))
    return float(share[0])


def encode_sharded(encode_batch, n: int, batch: int, latent_shape: tuple, comm: Comm) -> np.ndarray:
    """z of n samples encoded in the single-process batches [s, s + batch), batch k on rank
    k % R, gathered on every rank: the same bits as one process (same batches and threads)."""
    z = np.empty((n, *latent_shape), np.float32)
    starts = list(range(0, n, batch))
    mine = comm.agree(lambda: {s: encode_batch(np.arange(s, min(s + batch, n))) for s in starts[comm.rank::comm.size]},
                      "encoding the latents")   # a bad map on one rank: an error on all, none left waiting
    for part in comm.allgather(mine):
        for s, zs in part.items():
            z[s:s + len(zs)] = zs
    return z
