"""One data-parallel optimiser step, for any model that splits its step in two.

Every rank holds the whole model and reads only its slice of each global
batch (:mod:`.sampler`). A step is

    model.zero_grad()
    model.forward_backward(*local_batch, loss_scale=n_local / n_global)   # gradients accumulate (+=)
    comm.allreduce_sum(model.flat("grad"))      # the one collective: the flat gradient buffer, in place
    model.apply_update(**optimiser settings)    # the same update on every rank
    comm.bcast_array(model.bn_stats(), root=0)  # BatchNorm running statistics: rank 0's, as DDP's buffers

so the gradient every rank applies is that of the global batch's mean loss
(with local BatchNorm batch statistics: PyTorch DDP's rule; exactly the
single-process gradient for models without BatchNorm). ``sync_bn=True``
(SyncBatchNorm) makes BatchNorm take its batch statistics over all ranks
(model.set_bn_sync: small all-reduces inside forward and backward), so a step
equals the single-process step on the global batch up to float rounding, and
the running statistics agree on every rank without a broadcast. Parameters and
optimiser state are broadcast from rank 0 once at the start, as DDP does;
after that the ranks stay identical because they apply identical updates.

The model protocol (CPU: the flat buffers are zero-copy NumPy views):

    zero_grad()
    forward_backward(*batch, loss_scale=1.0, **loss) -> tuple of floats   # the local batch's losses, unscaled
    apply_update(**settings)
    flat(kind) -> 1-D float32 view, kind in "param", "grad" (and "m", "v" when it has them)
    bn_stats() -> 1-D float32 view of its BatchNorm running statistics, or None
    set_bn_sync(allreduce or None)   # only for sync_bn=True

A model on "cuda" under several ranks has no zero-copy views: its device buffers are
summed and broadcast through NCCL instead (:class:`.nccl.NCCLComm`, the model's
``device_collective``); sync_bn is CPU-only.
"""
from __future__ import annotations

import numpy as np

from .comm import Comm, world


def _flat_or_none(model, kind):
    try:
        return model.flat(kind)
    except (ValueError, KeyError):
        return None


class DataParallel:
    """Data-parallel steps of ``model`` over ``comm`` (default: :func:`world`)."""

    def __init__(self, model, comm: Comm | None = None, sync_bn: bool = False):
        self.model = model
        self.comm = world() if comm is None else comm
        self.sync_bn = bool(sync_bn)
        for name in ("zero_grad", "forward_backward", "apply_update", "flat"):
            if not callable(getattr(model, name, None)):
                raise TypeError(f"DataParallel: {type(model).__name__} has no {name}() (see the model protocol in "
                                "ubdiff/distributed/data_parallel.py)")
        self.gpu = getattr(model, "device", "cpu") == "cuda" and self.comm.size > 1
        if self.gpu:   # the device buffers through NCCL (ubdiff/distributed/nccl.py)
            self._init_gpu()
            return
        self.stats = model.bn_stats() if callable(getattr(model, "bn_stats", None)) else None
        if self.stats is not None and self.stats.size == 0:
            self.stats = None
        for kind in ("param", "m", "v"):   # one starting point: rank 0's
            buf = _flat_or_none(model, kind)
            if buf is not None:
                self.comm.bcast_array(buf, root=0)
        if self.stats is not None:
            self.comm.bcast_array(self.stats, root=0)
        if self.sync_bn:
            if not callable(getattr(model, "set_bn_sync", None)):
                raise TypeError(f"DataParallel: sync_bn needs {type(model).__name__}.set_bn_sync()")
            model.set_bn_sync(self.comm.allreduce_sum)

    def _init_gpu(self) -> None:
        from .nccl import NCCLComm
        if self.sync_bn:
            raise ValueError("DataParallel: sync_bn runs on the CPU only (the SyncBatchNorm hook sums host "
                             "memory); train on the CPU or without sync_bn")
        if not callable(getattr(self.model, "device_collective", None)):
            raise TypeError(f"DataParallel: {type(self.model).__name__} is on the GPU but has no "
                            "device_collective() (see ubdiff/distributed/nccl.py)")
        self.comm = NCCLComm(self.comm)
        for kind in ("param", "m", "v", "stats"):   # one starting point: rank 0's
            self.model.device_collective(kind, self.comm, root=0)

    def close(self) -> None:
        """Detach the BatchNorm hook (sync_bn) from the model."""
        if self.sync_bn:
            self.model.set_bn_sync(None)

    def step(self, batch, n_global: int, update: dict | None = None, loss: dict | None = None) -> np.ndarray:
        """One optimiser step. ``batch``: this rank's part of the global batch, a tuple of
        arrays whose first axis is the sample (``len(batch[0])`` samples of ``n_global``), or a
        function returning it (read inside the step, so that a failed read is agreed on);
        ``loss``: keyword arguments of forward_backward, ``update``: of apply_update.
        Returns this rank's share of the global batch's mean losses (sum over ranks = the
        global values).

        Failures: the read and forward_backward are checked on all ranks together before the
        gradient all-reduce (Comm.check: one more all-reduce of one number), so an error on
        one rank raises RanksError on every rank. With sync_bn, forward_backward itself runs
        collectives, so the read is checked before it, and an error inside it on one rank
        cannot be agreed on: it ends the job under Comm.guard (the callers' training loops)."""
        m = self.model
        err = None
        try:
            if callable(batch):
                batch = batch()
            n_local = len(batch[0])
            if not 1 <= n_local <= n_global:
                raise ValueError(f"DataParallel.step: a local batch of {n_local} samples of a global {n_global}")
        except Exception as e:   # noqa: BLE001 -- agreed on below
            err = e
        if self.sync_bn:   # before forward_backward's own collectives
            self.comm.check(err, "reading a batch")
        if err is None:
            scale = n_local / n_global
            m.zero_grad()
            try:
                losses = m.forward_backward(*batch, loss_scale=scale, **(loss or {}))
            except Exception as e:   # noqa: BLE001
                if self.sync_bn:
                    raise   # the others may wait inside a BatchNorm all-reduce: Comm.guard ends the job
                err = e
        if not self.sync_bn:
            self.comm.check(err, "a training step (reading its batch, forward / backward)")
        if self.gpu:
            self.comm.device_sum(m, "grad")
            m.apply_update(**(update or {}))
            self.comm.device_bcast(m, "stats")
            return np.asarray(losses, np.float64) * scale
        self.comm.allreduce_sum(m.flat("grad"))
        m.apply_update(**(update or {}))
        if self.stats is not None and not self.sync_bn:
            self.comm.bcast_array(self.stats, root=0)
        return np.asarray(losses, np.float64) * scale
