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
    dm = LatentDiffusion("small", seed=0, max_batch=16, device="cpu")
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


def test_two_threads_hammering_featnet_train_step_never_race():
    """The busy flag is set in the same step as it is checked (ubd_handle_acquire),
    before any argument conversion can run Python code. Here converting the labels
    sleeps (releasing the GIL) inside that window, so the second thread always
    arrives while the first holds the model: it must get RuntimeError, and the
    parameters must equal those of the same number of steps run one after another."""
    import time

    cfg = (1, 8, 8, ((4, 3, 3, 2, 2, 1, 1),), 3, 0, 4, 0.1, 1e-5)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)
    lab = np.array([0, 1, 2, 0], np.int64)
    hp = (1e-3, 0.9, 0.999, 1e-8, 0.0, 1.0)

    class SlowLabels:
        def __array__(self, dtype=None, copy=None):
            time.sleep(0.002)
            return lab

    h = lib.featnet_create(cfg, 0)
    done, busy, other = [0, 0], [0, 0], []

    def hammer(k):
        for _ in range(25):
            try:
                lib.featnet_train_step(h, x, SlowLabels(), None, *hp)
                done[k] += 1
            except RuntimeError as e:
                if "in use by another thread" not in str(e):
                    other.append(e)
                busy[k] += 1

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not other
    assert sum(busy) > 0 and sum(done) > 0  # the threads did collide, and steps went through
    ref = lib.featnet_create(cfg, 0)
    for _ in range(sum(done)):
        lib.featnet_train_step(ref, x, lab, None, *hp)
    assert lib.featnet_info(h)[4] == sum(done)  # the step counter: no lost or doubled update
    # same machine, thread count and shapes: the same bits (README, Reproducibility)
    np.testing.assert_array_equal(lib.featnet_get(h, "param"), lib.featnet_get(ref, "param"))
    np.testing.assert_array_equal(lib.featnet_get(h, "stats"), lib.featnet_get(ref, "stats"))
