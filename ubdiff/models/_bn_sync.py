"""The SyncBatchNorm hook of the C models (csrc/models/syncbn.h), made once for all of them.

A model whose BatchNorms can take their statistics over all data-parallel ranks
exposes ``set_bn_sync(allreduce)``; it calls :func:`attach` with its C setter
(``lib.invnet_set_bn_sync``, ``lib.ae_set_bn_sync``: (handle, fn_address, ctx_address)).
The C core calls the hook from the calling thread, outside OpenMP regions, with a
float64 buffer (the per-channel sums, n of them) to be summed over the ranks in
place; an exception in ``allreduce`` becomes the C error status "syncbn: the
all-reduce of ... failed" (the exception is kept on the model as ``_bn_sync_error``).
"""
from __future__ import annotations

import ctypes

import numpy as np

_HOOK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_double), ctypes.c_size_t, ctypes.c_void_p)


def attach(model, setter, handle, allreduce, what: str) -> None:
    """Point the C model at ``allreduce`` (None: per-process statistics again). The ctypes
    callback is kept on ``model._bn_sync`` for as long as the C model may call it."""
    if allreduce is None:
        setter(handle, 0, 0)
        model._bn_sync = None
        return
    if not callable(allreduce):
        raise TypeError(f"{what}.set_bn_sync: allreduce must be callable, got {type(allreduce).__name__}")

    def hook(ptr, n, _ctx):
        try:
            allreduce(np.ctypeslib.as_array(ptr, shape=(int(n),)))
            return 0
        except BaseException as e:   # noqa: BLE001 -- the C core reports the failure as an error status
            model._bn_sync_error = e
            return 1
    cb = _HOOK(hook)
    setter(handle, ctypes.cast(cb, ctypes.c_void_p).value, 0)
    model._bn_sync = cb
