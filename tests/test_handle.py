"""Model handles (csrc/python/handle.c): type checks and one call at a time."""
import threading

import numpy as np
import pytest

from ubdiff._native import lib
from ubdiff.models import InversionNet, LatentDiffusion


def test_foreign_handle_is_a_type_error():
    net = InversionNet("small", seed=0, max_batch=2)
    with pytest.raises(TypeError, match="expected a ubdiff.CoLatentAutoencoder model handle"):
        lib.ae_spec_of(net._h)
    with pytest.raises(TypeError, match="model handle"):
        lib.invnet_step(object())


def test_second_call_while_running_raises_not_races():
    dm = LatentDiffusion("small", seed=0, max_batch=16)
    done = threading.Event()

    def long_call():
        try:
            dm.sample(16, seed=0, sampler="ddpm")  # all T steps: long enough to overlap
        finally:
            done.set()

    t = threading.Thread(target=long_call)
    t.start()
    raised = 0
    z = np.zeros((1, 1, dm.sample_shape[-1]), np.float32)
    while not done.is_set():
        try:
            dm.forward(z, np.zeros(1, np.int64))
        except RuntimeError as e:
            assert "in use by another thread" in str(e)
            raised += 1
            if raised >= 3:
                break
    t.join()
    assert raised >= 1
    dm.forward(z, np.zeros(1, np.int64))  # usable again afterwards
