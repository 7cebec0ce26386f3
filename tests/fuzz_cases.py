"""Bad-input cases for tests/test_fuzz.py, and the worker that runs them.

Every case is a function of no arguments that calls the raw extension or the
public API with one kind of bad input and returns "clean" (it raised a clear
exception, as it must) or "ok" (it returned, and the result is right: NaN
propagated, an in-place op gave the out-of-place answer, ...). A wrong result
or accepted bad input raises Wrong. A crash kills the worker process, which is
why the worker runs in a subprocess:

    python tests/fuzz_cases.py < names      # one case name a line
    python tests/fuzz_cases.py --list       # all case names, "family<TAB>name"

prints one line per case, flushed before the next case starts:
    RESULT <TAB> name <TAB> status <TAB> detail
so a crash is pinned on the first case without a line (test_fuzz re-runs the
rest one per process to name the culprit).

Families: bytes (byte-swapped arrays), huge (dimensions above INT_MAX with
fake memory from stride tricks), alias (outputs overlapping inputs or the
model's own buffers), inplace (documented in-place ops), sequences (an
__index__ that empties the list being converted), threads, seeds, nan
(NaN / Inf in every float argument of every op), api (NaN / Inf and bad
arguments in the public classes), hparams (bad hyper-parameters; the model
must stay unchanged), ae_state (the autoencoder's get / set / zero,
apply_update, trained_range, set_steps and encode_backward order:
tests/fuzz_ae_state.py).
"""
from __future__ import annotations

import functools
import math
import re
import sys
import traceback

import numpy as np
from numpy.lib.stride_tricks import as_strided

import ubdiff
from ubdiff._native import lib

CLEAN = (TypeError, ValueError, OverflowError, RuntimeError, MemoryError, KeyError)
BIG = 2**32  # a dimension of BIG + d would truncate to d in a C int


class Wrong(Exception):
    """The call returned a wrong result or accepted bad input."""


def expect_raise(call, types=CLEAN, match=None) -> str:
    try:
        call()
    except types as e:
        if not str(e):
            raise Wrong(f"{type(e).__name__} without a message") from None
        if match and not re.search(match, str(e)):
            raise Wrong(f"{type(e).__name__} does not say {match!r}: {e}") from None
        return "clean"
    raise Wrong("accepted")


def expect_nonfinite_or_raise(call, outputs) -> str:
    """NaN / Inf in must come out (some output non-finite) or be refused."""
    try:
        ret = call()
    except CLEAN:
        return "clean"
    vals = [np.asarray(o) for o in outputs() if o is not None]
    if isinstance(ret, (float, int, tuple)):
        vals.append(np.asarray(ret, np.float64))
    if any(not np.isfinite(v).all() for v in vals):
        return "ok"
    raise Wrong("non-finite input, all outputs finite")


_RNG = np.random.default_rng(0)  # one stream: successive arrays differ (pred != target)


def rng():
    return _RNG


def R(*shape):
    return _RNG.standard_normal(shape).astype(np.float32)


def Z(*shape):
    return np.zeros(shape, np.float32)


def O(*shape):
    return np.ones(shape, np.float32)


# ---- fixtures: tiny models ------------------------------------------------------

FEAT_CFG = (1, 8, 8, ((4, 3, 3, 2, 2, 1, 1),), 3, 0, 2, 0.1, 1e-5)
DM_ARGS = (8, (1, 2), 1, 16, 2, 1, 4, 2, 8)  # dim, mults, channels, seq_len, groups, heads, dim_head, max_b, T
AE_OVR = dict(nt=16, nr=8, shots=1, max_batch=2, dim1=4, dim2=4, dim3=8, dim4=8, latent=8, head_width=8, heads=2,
              mlp_hidden=16, depth=1)


def new_featnet():
    return lib.featnet_create(FEAT_CFG, 0, "cpu")


def new_dm():
    return lib.diffusion_create(*DM_ARGS, 0, "cpu")


def new_ae_model(seed=0):
    from ubdiff.models import CoLatentAutoencoder
    return CoLatentAutoencoder("small", seed=seed, **AE_OVR)


def new_invnet_model(seed=0):
    from ubdiff.models import InversionNet
    return InversionNet("small", seed=seed, max_batch=2, device="cpu")


def new_seisenc_model(seed=0):
    from ubdiff.models.seis_encoder import SeismicEncoder
    return SeismicEncoder("small", seed=seed, max_batch=2, device="cpu")


def new_dm_model(seed=0):
    from ubdiff.models import LatentDiffusion
    return LatentDiffusion(dict(dim=8, dim_mults=(1, 2), seq_len=16, groups=2, heads=1, dim_head=4, timesteps=8),
                           seed=seed, max_batch=2, device="cpu")


#: the 2-D U-Net's tiny config (tests/test_unet2d.py TINY): 5 x 6 maps, two levels; max_batch 2
U2_CFG = (4, (1, 2), (0, 1), 1, 5, 6, 2, 2, 3)


def new_u2(seed=0):
    return lib.unet2d_create(U2_CFG, 2, seed, "cpu")


def new_u2_model(seed=0):
    from ubdiff.models import UNet2D
    return UNet2D({"dim": 4, "dim_mults": (1, 2), "height": 5, "width": 6, "groups": 2, "heads": 2, "dim_head": 3},
                  seed=seed, max_batch=2, device="cpu")


def new_ddpm_model(seed=0):
    from ubdiff.models import VelocityDDPM
    return VelocityDDPM({"dim": 4, "dim_mults": (1, 2), "height": 5, "width": 6, "groups": 2, "heads": 2,
                         "dim_head": 3, "timesteps": 8}, seed=seed, max_batch=2, device="cpu")


cached = functools.lru_cache(maxsize=None)
featnet = cached(new_featnet)
dm = cached(new_dm)
ae_model = cached(new_ae_model)
invnet_model = cached(new_invnet_model)
seisenc_model = cached(new_seisenc_model)
u2 = cached(new_u2)


def ae():
    return ae_model()._h


def dm_sampled():
    """The cached diffusion handle with a finished 2-sample DDIM run to read."""
    h = dm()
    lib.diffusion_sample_begin(h, 2, 0, 0, 1, 2, 0.0, False)
    lib.diffusion_sample_run(h, 2, True)
    return h


def invnet():
    return invnet_model()._h


def seisenc():
    return seisenc_model()._h


def labels():
    return np.array([0, 2], np.int64)


# ---- templates: one valid call of every entry point ---------------------------------
# name -> (function name, builder of the argument list, indices of the output arrays)

def _physics_args():
    vel = np.full((1, 10, 10), 2000.0, np.float32)
    return [Z(1, 1, 20, 2), vel, [1], [5], [1, 1], [3, 6], 15.0, 1e-3, 10.0, 5]


T = {
    # ops
    "linear_forward": (lambda: [Z(2, 3), R(2, 4), R(3, 4), R(3)], {0}),
    "linear_backward": (lambda: [Z(2, 4), Z(3, 4), Z(3), R(2, 3), R(2, 4), R(3, 4)], {0, 1, 2}),
    "act_forward": (lambda: [Z(6), R(6), 1, 0.2], {0}),
    "act_backward": (lambda: [Z(6), R(6), R(6), 1, 0.2], {0}),
    "l1_forward": (lambda: [R(6), R(6)], set()),
    "l1_backward": (lambda: [Z(6), R(6), R(6), 1.0], {0}),
    "mse_forward": (lambda: [R(6), R(6)], set()),
    "mse_backward": (lambda: [Z(6), R(6), R(6), 1.0], {0}),
    "adam_update": (lambda: [R(6), Z(6), Z(6), R(6), 1, 1e-3, 0.9, 0.999, 1e-8, 0.0, True], {0, 1, 2}),
    "ema_update": (lambda: [R(6), R(6), 0.9], {0}),
    "grad_norm": (lambda: [R(6)], set()),
    "clip_grad_norm": (lambda: [R(6), 1.0], {0}),
    "rand_uniform": (lambda: [Z(6), 0], {0}),
    "rand_normal": (lambda: [Z(6), 0], {0}),
    # conv
    "conv2d_forward": (lambda: [Z(1, 2, 3, 3), R(1, 1, 5, 5), R(2, 1, 3, 3), R(2)], {0}),
    "conv2d_backward": (lambda: [Z(1, 1, 5, 5), Z(2, 1, 3, 3), Z(2), R(1, 2, 3, 3), R(1, 1, 5, 5), R(2, 1, 3, 3)],
                        {0, 1, 2}),
    "convt2d_forward": (lambda: [Z(1, 2, 7, 7), R(1, 1, 5, 5), R(1, 2, 3, 3), R(2)], {0}),
    "convt2d_backward": (lambda: [Z(1, 1, 5, 5), Z(1, 2, 3, 3), Z(2), R(1, 2, 7, 7), R(1, 1, 5, 5), R(1, 2, 3, 3)],
                         {0, 1, 2}),
    "conv1d_forward": (lambda: [Z(1, 2, 3), R(1, 1, 5), R(2, 1, 3), R(2)], {0}),
    "conv1d_backward": (lambda: [Z(1, 1, 5), Z(2, 1, 3), Z(2), R(1, 2, 3), R(1, 1, 5), R(2, 1, 3)], {0, 1, 2}),
    # norms and shape ops
    "batchnorm_forward_train": (lambda: [Z(2, 3, 4), Z(3), Z(3), Z(3), O(3), R(2, 3, 4), O(3), Z(3), 0.1, 1e-5],
                                {0, 1, 2, 3, 4}),
    "batchnorm_forward_eval": (lambda: [Z(2, 3, 4), R(2, 3, 4), O(3), Z(3), Z(3), O(3), 1e-5], {0}),
    "batchnorm_backward": (lambda: [Z(2, 3, 4), Z(3), Z(3), R(2, 3, 4), R(2, 3, 4), O(3), Z(3), O(3)], {0, 1, 2}),
    "batchnorm_backward_eval": (lambda: [Z(2, 3, 4), Z(3), Z(3), R(2, 3, 4), R(2, 3, 4), O(3), Z(3), O(3), 1e-5],
                                {0, 1, 2}),
    "groupnorm_forward": (lambda: [Z(2, 4, 3), Z(2, 2), Z(2, 2), R(2, 4, 3), O(4), Z(4), 1e-5], {0, 1, 2}),
    "groupnorm_backward": (lambda: [Z(2, 4, 3), Z(4), Z(4), R(2, 4, 3), R(2, 4, 3), O(4), Z(2, 2), O(2, 2)],
                           {0, 1, 2}),
    "layernorm_forward": (lambda: [Z(2, 3, 4), Z(6), Z(6), R(2, 3, 4), O(4), Z(4), 1e-5], {0, 1, 2}),
    "layernorm_backward": (lambda: [Z(2, 3, 4), Z(4), Z(4), R(2, 3, 4), R(2, 3, 4), O(4), Z(6), O(6)], {0, 1, 2}),
    "rmsnorm_forward": (lambda: [Z(2, 3, 4), Z(2, 4), R(2, 3, 4), O(3)], {0, 1}),
    "rmsnorm_backward": (lambda: [Z(2, 3, 4), Z(3), R(2, 3, 4), R(2, 3, 4), O(3), O(2, 4)], {0, 1}),
    "upsample1d_forward": (lambda: [Z(2, 3, 8), R(2, 3, 4)], {0}),
    "upsample1d_backward": (lambda: [Z(2, 3, 4), R(2, 3, 8)], {0}),
    "upsample2d_forward": (lambda: [Z(1, 2, 4, 6), R(1, 2, 2, 3)], {0}),
    "upsample2d_backward": (lambda: [Z(1, 2, 2, 3), R(1, 2, 4, 6)], {0}),
    "crop2d_forward": (lambda: [Z(1, 2, 3, 3), R(1, 2, 5, 5), 1, 1, 1, 1], {0}),
    "crop2d_backward": (lambda: [Z(1, 2, 5, 5), R(1, 2, 3, 3), 1, 1, 1, 1], {0}),
    "concat_forward": (lambda: [Z(2, 5, 3), R(2, 2, 3), R(2, 3, 3)], {0}),
    "concat_backward": (lambda: [Z(2, 2, 3), Z(2, 3, 3), R(2, 5, 3), 2], {0, 1}),
    "time_embedding": (lambda: [Z(3, 8), np.array([0.0, 1.0, 5.0], np.float32)], {0}),
    "scale_shift_forward": (lambda: [Z(2, 3, 4), R(2, 3, 4), R(2, 6)], {0}),
    "scale_shift_backward": (lambda: [Z(2, 3, 4), Z(2, 6), R(2, 3, 4), R(2, 3, 4), R(2, 6)], {0, 1}),
    "axpy": (lambda: [R(5), R(5), 2.0], {0}),
    # softmax and attention
    "softmax_forward": (lambda: [Z(2, 5), R(2, 5)], {0}),
    "softmax_backward": (lambda: [Z(2, 5), R(2, 5), np.full((2, 5), 0.2, np.float32)], {0}),
    "mhsa_forward": (lambda: [Z(1, 4, 6), Z(1, 2, 4, 4), R(1, 4, 18)], {0, 1}),
    "mhsa_backward": (lambda: [Z(1, 4, 18), Z(1, 2, 4, 4), R(1, 4, 6), R(1, 4, 18), np.full((1, 2, 4, 4), .25, np.float32)],
                      {0, 1}),
    "full_attention_forward": (lambda: [Z(1, 4, 5), Z(1, 2, 5, 5), R(1, 12, 5), 0.5], {0, 1}),
    "full_attention_backward": (lambda: [Z(1, 12, 5), Z(1, 2, 5, 5), R(1, 4, 5), R(1, 12, 5),
                                         np.full((1, 2, 5, 5), .2, np.float32), 0.5], {0, 1}),
    "linear_attention_forward": (lambda: [Z(1, 4, 5), Z(1, 4, 5), Z(1, 4, 5), Z(1, 2, 2, 2), R(1, 12, 5), 0.5],
                                 {0, 1, 2, 3}),
    "linear_attention_backward": (lambda: [Z(1, 12, 5), Z(48), R(1, 4, 5), R(1, 12, 5), R(1, 4, 5), R(1, 4, 5),
                                           R(1, 2, 2, 2), 0.5], {0, 1}),
    # physics
    "forward_model": (_physics_args, {0}),
    "ricker": (lambda: [Z(20), 15.0, 1e-3], {0}),
    "check_velocity": (lambda: [np.full((1, 10, 10), 2000.0, np.float32), 1e-3, 10.0, 5], set()),
    # feature net and cross-entropy
    "featnet_forward": (lambda: [featnet(), R(2, 1, 8, 8), Z(2, 4), Z(2, 3), None, False], {2, 3}),
    "featnet_backward": (lambda: [featnet(), R(2, 1, 8, 8), R(2, 4), R(2, 3), None], set()),
    "featnet_train_step": (lambda: [featnet(), R(2, 1, 8, 8), labels(), None, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1.0],
                           set()),
    "xent_forward": (lambda: [Z(1), Z(2, 3), R(2, 3), labels()], {0, 1}),
    "xent_backward": (lambda: [Z(2, 3), np.full((2, 3), 1 / 3, np.float32), labels(), 1.0], {0}),
    # InversionNet ("small": seis (B, 5, 250, 70))
    "invnet_forward": (lambda: [invnet(), Z(2, 1, 70, 70), R(2, 5, 250, 70), False], {1}),
    "invnet_backward": (lambda: [invnet(), R(2, 1, 70, 70), R(2, 5, 250, 70)], set()),
    "invnet_train_step": (lambda: [invnet(), Z(3), R(2, 5, 250, 70), R(2, 1, 70, 70), 1e-3, 0.9, 0.999, 1e-8, 0.0,
                                   1.0, 1.0], {1}),
    # the seismic encoder of the baselines ("small": seis (B, 5, 250, 70) -> z (B, 32))
    "seisenc_forward": (lambda: [seisenc(), Z(2, 32), R(2, 5, 250, 70), False], {1}),
    "seisenc_backward": (lambda: [seisenc(), R(2, 32), R(2, 5, 250, 70)], set()),
    # co-latent autoencoder (tiny config)
    "ae_encode": (lambda: [ae(), Z(2, 8), R(2, 1, 70, 70), False], {1}),
    "ae_decode": (lambda: [ae(), Z(2, 1, 70, 70), Z(2, 1, 16, 8), R(2, 8)], {1, 2}),
    "ae_train_step": (lambda: [ae(), Z(7), R(2, 1, 70, 70), R(2, 1, 16, 8), 2, False, (1e-4, 0.9, 0.999, 1e-8, 0.0),
                               (1.0, 1.0, 1.0, 1.0)], {1}),
    "ae_forward_backward": (lambda: [ae(), Z(7), R(2, 1, 70, 70), R(2, 1, 16, 8), 2, False,
                                     (0.0, 0.9, 0.999, 1e-8, 0.0), (1.0, 1.0, 1.0, 1.0)], {1}),
    "ae_decode_backward": (lambda: [ae(), Z(7), Z(2, 8), R(2, 8), R(2, 1, 70, 70), R(2, 1, 16, 8),
                                    (1.0, 1.0, 1.0, 1.0)], {1, 2}),
    "ae_encode_backward": (lambda: [ae(), R(2, 8), R(2, 1, 70, 70)], set()),
    # latent diffusion (tiny config: (B, 1, 16), T = 8)
    "unet_forward": (lambda: [dm(), Z(2, 1, 16), R(2, 1, 16), np.array([1.0, 3.0], np.float32), False], {1}),
    "unet_backward": (lambda: [dm(), Z(2, 1, 16), R(2, 1, 16)], {1}),
    "diffusion_loss": (lambda: [dm(), Z(2), R(2, 1, 16), np.array([1.0, 3.0], np.float32), R(2, 1, 16), 0.0], {1}),
    "diffusion_train_step": (lambda: [dm(), R(2, 1, 16), 2, 1, 0, 0, 1e-4, 0.9, 0.99, 1e-8, 0.0, 1.0, 0.995, 10],
                             set()),
    "diffusion_sample": (lambda: [dm(), Z(2, 1, 16), 0, 1, 2, 0.0, False], {1}),
    "diffusion_forward_backward": (lambda: [dm(), R(2, 1, 16), 2, 1, 0, 0], set()),
    "diffusion_apply_update": (lambda: [dm(), 0, 1e-4, 0.9, 0.99, 1e-8, 0.0, 1.0, 0.995, 10], set()),
    "diffusion_sample_begin": (lambda: [dm(), 2, 0, 0, 1, 2, 0.0, False], set()),
    "diffusion_sample_read": (lambda: [dm_sampled(), Z(2, 1, 16)], {1}),
    # 2-D U-Net (tiny config: (B, 1, 5, 6)) and its op
    "unet2d_forward": (lambda: [u2(), Z(2, 1, 5, 6), R(2, 1, 5, 6), np.array([1.0, 3.0], np.float32)], {1}),
    "unet2d_backward": (lambda: [u2(), Z(2, 1, 5, 6), R(2, 1, 5, 6)], {1}),
    "unet2d_train_step": (lambda: [u2(), Z(2), R(2, 1, 5, 6), np.array([1.0, 3.0], np.float32), R(2, 1, 5, 6),
                                   1e-4, 0.9, 0.99, 1e-8, 0.0, False, 1.0], {1}),
    "pixel_unshuffle_forward": (lambda: [Z(1, 8, 2, 3), R(1, 2, 4, 6), 2], {0}),
    "pixel_unshuffle_backward": (lambda: [Z(1, 2, 4, 6), R(1, 8, 2, 3), 2], {0}),
}

# The CUDA host-roundtrip twins validate exactly like the CPU entry points;
# the validation families run them too (they raise before any device call).
CUDA_TWINS = [n for n in T if hasattr(lib, "cuda_" + n)]

MODEL_CALLS = {n for n in T if n.split("_")[0] in ("featnet", "invnet", "seisenc", "ae", "unet", "diffusion",
                                                   "unet2d")}


def call(name, args, cuda=False):
    return getattr(lib, ("cuda_" if cuda else "") + name)(*args)


def float_arrays(args):
    return [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype == np.float32]


# ---- family: byte order ---------------------------------------------------------------

def case_bytes(name, i, cuda):
    def run():
        args = T[name][0]()
        args[i] = args[i].astype(args[i].dtype.newbyteorder())  # same values, '>f4'
        return expect_raise(lambda: call(name, args, cuda), TypeError, "byte")
    return run


def case_bytes_labels(name):
    """Byte-swapped integer labels are converted by value: same result as native."""
    def run():
        a = T[name][0]()
        b = [x.copy() if isinstance(x, np.ndarray) else x for x in a]
        li = [k for k, x in enumerate(a) if isinstance(x, np.ndarray) and x.dtype.kind == "i"][0]
        b[li] = b[li].astype(b[li].dtype.newbyteorder())
        ra, rb = call(name, a), call(name, b)
        outs = sorted(T[name][1])
        if ra != rb or any(not np.array_equal(a[k], b[k]) for k in outs):
            raise Wrong("byte-swapped labels changed the result")
        return "ok"
    return run


# ---- family: dimensions above INT_MAX (fake memory) ---------------------------------------

def fake(shape, writable=True):
    """A C-contiguous float32 array of `shape` over 64 bytes: no memory behind it.
    Anything that reads it crashes, so it must be refused before the core runs."""
    strides, s = [], 4
    for d in reversed(shape):
        strides.append(s)
        s *= d
    return as_strided(np.zeros(16, np.float32), shape=tuple(shape), strides=tuple(reversed(strides)),
                      writeable=writable)


def case_huge(name, i, d, cuda):
    def run():
        args = T[name][0]()
        shape = list(args[i].shape)
        shape[d] += BIG
        args[i] = fake(shape)
        return expect_raise(lambda: call(name, args, cuda), ValueError, "limit|too large|INT_MAX")
    return run


def case_huge_consistent(label, fn, make):
    """All arrays agree on a dimension of BIG + d (it would truncate to the small valid d),
    or on dimensions whose product passes INT_MAX."""
    def run():
        return expect_raise(lambda: getattr(lib, fn)(*make()), ValueError, "limit")
    return run


HUGE_CONSISTENT = {
    "linear_B": ("linear_forward", lambda: [fake((BIG + 2, 3)), fake((BIG + 2, 4)), R(3, 4), None]),
    "linear_C": ("linear_forward", lambda: [Z(2, 3), fake((2, BIG + 4)), fake((3, BIG + 4)), None]),
    "rmsnorm_L": ("rmsnorm_forward", lambda: [fake((2, 3, BIG + 4)), fake((2, BIG + 4)), fake((2, 3, BIG + 4)), O(3)]),
    "upsample1d_B": ("upsample1d_forward", lambda: [fake((BIG + 2, 3, 8)), fake((BIG + 2, 3, 4))]),
    "upsample2d_C": ("upsample2d_forward", lambda: [fake((1, BIG + 2, 4, 6)), fake((1, BIG + 2, 2, 3))]),
    "scale_shift_B": ("scale_shift_forward", lambda: [fake((BIG + 2, 3, 4)), fake((BIG + 2, 3, 4)), fake((BIG + 2, 6))]),
    "time_embedding_B": ("time_embedding", lambda: [fake((BIG + 3, 8)), fake((BIG + 3,))]),
    "crop2d_B": ("crop2d_forward", lambda: [fake((BIG + 1, 2, 3, 3)), fake((BIG + 1, 2, 5, 5)), 1, 1, 1, 1]),
    "act_n": ("act_forward", lambda: [fake((BIG + 6,)), fake((BIG + 6,)), 0, 0.0]),
    "softmax_D": ("softmax_forward", lambda: [fake((2, BIG + 5)), fake((2, BIG + 5))]),
    "diffusion_sample_N": ("diffusion_sample", lambda: [dm(), fake((BIG + 2, 1, 16)), 0, 1, 2, 0.0, False]),
    "ae_encode_B": ("ae_encode", lambda: [ae(), fake((BIG + 2, 8)), fake((BIG + 2, 1, 70, 70)), False]),
    "ae_decode_B": ("ae_decode", lambda: [ae(), fake((BIG + 2, 1, 70, 70)), None, fake((BIG + 2, 8))]),
    "forward_model_N": ("forward_model", lambda: [fake((BIG + 1, 1, 20, 2)), fake((BIG + 1, 10, 10))] +
                        _physics_args()[2:]),
    "rand_n": ("rand_uniform", lambda: [fake((BIG + 6,)), 0]),
    # every dimension fits an int, the element count does not (kernels loop over B * L in ints)
    "rmsnorm_count": ("rmsnorm_forward", lambda: [fake((2**16, 1, 2**15 + 1)), fake((2**16, 2**15 + 1)),
                                                  fake((2**16, 1, 2**15 + 1)), O(1)]),
    "act_count": ("act_forward", lambda: [fake((3, 2**30)), fake((3, 2**30)), 0, 0.0]),
    "linear_count": ("linear_forward", lambda: [fake((2**16, 2**16)), fake((2**16, 4)), fake((2**16, 4)), None]),
    "grad_norm_count": ("grad_norm", lambda: [fake((2**20, 2**12))]),
}


# ---- family: aliasing -------------------------------------------------------------------

def overlapping(a, b, shift):
    """Copies of a and b as views of one buffer, b starting `shift` elements after a."""
    buf = np.zeros(a.size + b.size + shift + 1, np.float32)
    va = buf[:a.size].reshape(a.shape)
    vb = buf[shift:shift + b.size].reshape(b.shape)
    va[...] = a
    vb[...] = b
    return va, vb


def case_alias(name, i, j, cuda):
    def run():
        args = T[name][0]()
        shift = 1 if args[i].size > 1 else 0
        args[i], args[j] = overlapping(args[i], args[j], shift)
        exact = shift == 0 and args[i].size == args[j].size
        try:
            call(name, args, cuda)
        except ValueError as e:
            if "shares memory" not in str(e):
                raise Wrong(f"ValueError without 'shares memory': {e}") from None
            return "clean"
        if exact and name in INPLACE:
            return "ok"
        raise Wrong("accepted an output overlapping another argument")
    return run


def model_buffers(name):
    """Flat views of the model buffers of template `name` (param + grad at least)."""
    if name.startswith("featnet"):
        return [lib.featnet_view(featnet(), k) for k in ("param", "grad", "stats")]
    if name.startswith("invnet"):
        return [lib.invnet_view(invnet(), k) for k in ("param", "grad", "stats")]
    if name.startswith("seisenc"):
        return [lib.seisenc_view(seisenc(), k) for k in ("param", "grad", "stats")]
    if name.startswith("ae"):
        return [lib.ae_flat(ae(), k) for k in ("param", "grad", "buf")]
    if name.startswith("unet2d"):
        return [lib.unet2d_view(u2(), k) for k in ("param", "grad", "ema")]
    return [lib.diffusion_view(dm(), k) for k in ("param", "grad", "ema")]


def case_alias_model(name, i, k):
    """An array that is a view of the model's own buffer k is refused."""
    def run():
        args = T[name][0]()
        buf = model_buffers(name)[k]
        n = args[i].size
        if buf.size < n:
            return "ok"  # buffer too small to hold the argument: nothing to test
        view = buf[:n].reshape(args[i].shape)
        args[i] = view
        return expect_raise(lambda: call(name, args), ValueError, "model's own")
    return run


# ---- family: in place -----------------------------------------------------------------------

INPLACE = {"act_forward": [(0, 1)], "act_backward": [(0, 1), (0, 2)], "l1_backward": [(0, 1), (0, 2)],
           "mse_backward": [(0, 1), (0, 2)], "axpy": [(0, 1)], "softmax_forward": [(0, 1)],
           "adam_update": [(0, 3), (1, 3), (2, 3)], "ema_update": [(0, 1)]}


def case_inplace(name, i, j):
    """out is exactly input j: the same result as with separate arrays."""
    def run():
        ref = T[name][0]()
        ref[i] = ref[j].copy()  # the output starts as input j (it accumulates into it, or overwrites it)
        args = [a.copy() if isinstance(a, np.ndarray) else a for a in ref]
        args[i] = args[j]  # in place: the very same array
        r_ref, r_in = call(name, ref), call(name, args)
        outs = T[name][1]
        for k in outs:
            if not np.array_equal(ref[k], args[k], equal_nan=True):
                raise Wrong(f"in place gave a different output {k}")
        if r_ref != r_in:
            raise Wrong("in place gave a different return value")
        return "ok"
    return run


# ---- family: sequences whose items mutate them -------------------------------------------------

class Emptier:
    """An int whose __index__ empties (and then refills with junk) the container it lives in."""

    def __init__(self, value, box=None):
        self.value, self.box = value, box

    def __index__(self):
        if isinstance(self.box, list):
            self.box.clear()
            self.box.extend(["junk"] * 3)
            self.box.clear()
        elif isinstance(self.box, dict):
            self.box.clear()
        return self.value

    __int__ = __index__

    def __float__(self):
        self.__index__()
        return float(self.value)


def seq_case(make):
    def run():
        try:
            make()
        except CLEAN:
            return "clean"
        return "ok"  # accepted: the values were read once, from a copy
    return run


def _mut_list(n, pos, value):
    box = [1] * n
    box[pos] = Emptier(value, box)
    return box


def _seq_physics(pos):
    def make():
        args = _physics_args()
        args[4] = _mut_list(2, pos, 1)  # rec_z
        lib.forward_model(*args)
    return make


def _seq_dim_mults(pos):
    def make():
        args = list(DM_ARGS)
        args[1] = _mut_list(2, pos, 2)
        lib.diffusion_create(*args, 0, "cpu")
    return make


def _seq_params_shape(pos):
    def make():
        pb = lib.ParamBuffer()
        pb.add("w", _mut_list(3, pos, 2))
    return make


def _seq_featnet_blocks(pos):
    def make():
        blocks = [[4, 3, 3, 2, 2, 1, 1], [4, 3, 3, 1, 1, 1, 1]]
        outer = list(blocks)
        outer[pos][0] = Emptier(4, outer)
        lib.featnet_layout((1, 8, 8, outer, 3, 0, 2, 0.1, 1e-5))
    return make


def _seq_invnet_dims(pos):
    def make():
        from ubdiff.models.inversionnet import _c_config
        cfg = list(_c_config(invnet_model().config, 2))
        dims = list(cfg[0])
        dims[pos] = Emptier(dims[pos], dims)
        cfg[0] = dims
        lib.invnet_layout(tuple(cfg))
    return make


def _seq_ae_steps():
    d = {"encoder": 1, "head_v": 1}
    d["encoder"] = Emptier(3, d)
    lib.ae_set_steps(ae(), d)


def _seq_philox():
    c = [1, 2, 3, 4]
    c[0] = Emptier(1, c)
    lib.philox4x32_10(c, [5, 6])


class LyingSeq:
    """Claims 5 items, has 2."""

    def __len__(self):
        return 5

    def __getitem__(self, i):
        if i >= 2:
            raise IndexError(i)
        return 1


def _seq_lying_positions():
    args = _physics_args()
    args[2], args[3] = LyingSeq(), LyingSeq()
    lib.forward_model(*args)


def _seq_arena():
    sizes = [16, 16, 16]
    sizes[0] = Emptier(16, sizes)
    lib.arena_exercise("cpu", sizes, [0, 0, 0])


def _seq_conv_pair():
    lib.conv2d_forward(*T["conv2d_forward"][0](), stride=[Emptier(1), 1])


# ---- family: thread counts ----------------------------------------------------------------------

def case_threads(n, exc):
    def run():
        before = lib.get_num_threads()
        r = expect_raise(lambda: ubdiff.set_num_threads(n), exc)
        r = expect_raise(lambda: lib.set_num_threads(n), exc)
        if hasattr(lib, "set_num_threads_adaptive"):
            was = lib.threads_adaptive()
            if n is not None:  # ubdiff.set_num_threads_adaptive(None): up to the available cores
                r = expect_raise(lambda: ubdiff.set_num_threads_adaptive(n), exc)
            r = expect_raise(lambda: lib.set_num_threads_adaptive(n), exc)
            if lib.threads_adaptive() != was:
                raise Wrong("a refused adaptive call changed the thread mode")
        if lib.get_num_threads() != before:
            raise Wrong("thread count changed by a refused call")
        x = R(70000)  # above the parallel threshold: a team runs
        out = Z(70000)
        lib.act_forward(out, x, 0)
        if not np.array_equal(out, np.maximum(x, 0)):
            raise Wrong("op wrong after a refused thread count")
        return r
    return run


def case_threads_max():
    before = lib.get_num_threads()
    n = lib.max_num_threads()
    try:
        lib.set_num_threads(n)
        x = R(70000)
        out = Z(70000)
        lib.act_forward(out, x, 0)
        if not np.array_equal(out, np.maximum(x, 0)):
            raise Wrong(f"op wrong with max_num_threads() = {n} threads")
    finally:
        lib.set_num_threads(before)
    return "ok"


# ---- family: seeds -------------------------------------------------------------------------------

BAD_SEEDS = {"neg": (-1, ValueError), "2**64": (2**64, ValueError), "2**64+7": (2**64 + 7, ValueError),
             "2**200": (2**200, ValueError), "float": (1.5, TypeError), "str": ("3", TypeError),
             "none": (None, TypeError), "bool": (True, TypeError), "npfloat": (np.float64(2.0), TypeError)}

SEEDED = {  # name -> (call with a seed)
    "rand_uniform": lambda s: lib.rand_uniform(Z(4), s),
    "rand_normal": lambda s: lib.rand_normal(Z(4), s),
    "rand_stream": lambda s: lib.rand_uniform(Z(4), 0, s),
    "rand_offset": lambda s: lib.rand_normal(Z(1), 0, 0, s),  # one element: offset 2**64 - 1 is its last
    "featnet_create": lambda s: lib.featnet_create(FEAT_CFG, s, "cpu"),
    "invnet_init": lambda s: lib.invnet_init(invnet(), s),
    "ae_create": lambda s: lib.ae_create(lib.ae_config(ae()), s),
    "ae_init": lambda s: lib.ae_init(ae(), s),
    "diffusion_create": lambda s: lib.diffusion_create(*DM_ARGS, s, "cpu"),
    "diffusion_init": lambda s: lib.diffusion_init(dm(), s),
    "diffusion_train_step": lambda s: lib.diffusion_train_step(dm(), R(2, 1, 16), 2, 1, s, 0, 0.0, 0.9, 0.99, 1e-8,
                                                               0.0, 1.0, 0.995, 0),
    "diffusion_sample": lambda s: lib.diffusion_sample(dm(), Z(2, 1, 16), s, 1, 1, 0.0, False),
    "diffusion_forward_backward": lambda s: lib.diffusion_forward_backward(dm(), R(2, 1, 16), 2, 1, s, 0),
    "diffusion_sample_begin": lambda s: lib.diffusion_sample_begin(dm(), 2, 0, s, 1, 2, 0.0, False),
    "LatentDiffusion": lambda s: new_dm_model(seed=s),
    "LatentDiffusion.reinit": lambda s: new_dm_model().reinit(s),
    "LatentDiffusion.sample": lambda s: new_dm_model().sample(1, seed=s, sampler="ddim", steps=1),
    "LatentDiffusion.train_step": lambda s: new_dm_model().train_step(R(2, 1, 16), seed=s),
    "CoLatentAutoencoder": lambda s: new_ae_model(seed=s),
    "CoLatentAutoencoder.init": lambda s: new_ae_model().init(s),
    "InversionNet": lambda s: new_invnet_model(seed=s),
    "unet2d_create": lambda s: new_u2(seed=s),
    "unet2d_init": lambda s: lib.unet2d_init(u2(), s),
    "UNet2D": lambda s: new_u2_model(seed=s),
    "diffusion_create_unet2d": lambda s: lib.diffusion_create_unet2d(U2_CFG, 2, 8, s, "cpu"),
    "VelocityDDPM": lambda s: new_ddpm_model(seed=s),
    "VelocityDDPM.sample": lambda s: new_ddpm_model().sample(1, seed=s, sampler="ddim", steps=1),
}
if hasattr(lib, "cuda_rand_uniform"):
    SEEDED["cuda_rand_uniform"] = lambda s: lib.cuda_rand_uniform(Z(4), s)
    SEEDED["cuda_curand_philox_uniform"] = lambda s: lib.cuda_curand_philox_uniform(Z(4), s)


SEED_NONE_OK = {"LatentDiffusion.train_step"}  # seed=None: the model's own seed
HAVE_GPU = lib.cuda_device_count() > 0


def case_seed(name, value, exc):
    def run():
        if value is None and name in SEED_NONE_OK:
            SEEDED[name](None)
            return "ok"
        return expect_raise(lambda: SEEDED[name](value), exc, "seed|stream|offset|int")
    return run


def case_seed_top(name):
    """2**64 - 1 is a valid seed (NumPy's uint64 too)."""
    def run():
        if name.startswith("cuda_") and not HAVE_GPU:  # valid, so it reaches the (absent) device
            return expect_raise(lambda: SEEDED[name](2**64 - 1), RuntimeError, "CUDA|cuda")
        SEEDED[name](2**64 - 1)
        SEEDED[name](np.uint64(2**64 - 1))
        return "ok"
    return run


def case_rand_wrap():
    return expect_raise(lambda: lib.rand_uniform(Z(10), 0, 0, 2**64 - 5), ValueError, "offset")


def case_philox_words():
    r = expect_raise(lambda: lib.philox4x32_10((2**32, 0, 0, 0), (0, 0)), ValueError, "counter")
    return expect_raise(lambda: lib.philox4x32_10((0, 0, 0, 0), (-1, 0)), ValueError, "key")


# ---- family: NaN / Inf in every float argument ---------------------------------------------------

# Where a finite output is the right answer for a non-finite input.
FINITE_OK = {  # (op, argument, value): the exact answer is finite
    ("batchnorm_forward_eval", 5, "inf"),   # running_var = inf: x_hat = 0, out = beta
    ("batchnorm_backward_eval", 7, "inf"),  # running_var = inf: every gradient is 0
    ("l1_backward", 1, "inf"),              # sign(inf - t) = 1
    ("l1_backward", 2, "inf"),              # sign(p - inf) = -1
}


def _nan_expected(name, i, args, ret):
    if name == "act_backward" and i == 2:
        # PyTorch's leaky_relu_backward: x > 0 ? g : g * slope (NaN x passes g * slope, +inf x passes g)
        x, g = args[2], args[1]
        return np.array_equal(args[0], np.where(x > 0, g, g * np.float32(args[4])))
    if name == "act_backward" and i == 4:
        # a non-finite slope reaches only the x <= 0 elements: with every x > 0 (the random draw
        # depends on the cases listed before) all outputs are rightly finite
        x, g = args[2], args[1]
        return np.all(x > 0) and np.array_equal(args[0], g)
    return None


def fresh_template(name):
    """Model templates on fresh models (a NaN step must not poison the cached ones)."""
    build, outs = T[name]
    if name not in MODEL_CALLS:
        return build(), outs
    prefix = name.split("_")[0]
    fresh = {"featnet": new_featnet, "invnet": lambda: new_invnet_model()._h,
             "seisenc": lambda: new_seisenc_model()._h, "ae": lambda: new_ae_model()._h,
             "unet": new_dm, "diffusion": new_dm, "unet2d": new_u2}[prefix]()
    args = build()
    args[0] = fresh
    return args, outs


def model_outputs(name, args):
    if name.startswith("featnet"):
        return [lib.featnet_view(args[0], k) for k in ("param", "grad")]
    if name.startswith("invnet"):
        return [lib.invnet_view(args[0], k) for k in ("param", "grad")]
    if name.startswith("seisenc"):
        return [lib.seisenc_view(args[0], k) for k in ("param", "grad")]
    if name.startswith("ae"):
        return [lib.ae_flat(args[0], k) for k in ("param", "grad")]
    if name.startswith("unet2d"):
        return [lib.unet2d_view(args[0], k) for k in ("param", "grad")]
    if name.startswith(("unet", "diffusion")):
        return [lib.diffusion_view(args[0], k) for k in ("param", "grad")]
    return []


def case_nan(name, i, value):
    def run():
        args, outs = fresh_template(name)
        if isinstance(args[i], np.ndarray):
            args[i] = np.full_like(args[i], value)
        else:
            args[i] = value
        ret = []

        def go():
            ret.append(call(name, args))
            return ret[0]

        def outputs():
            return [args[k] for k in outs] + model_outputs(name, args)

        try:
            return expect_nonfinite_or_raise(go, outputs)
        except Wrong:
            if (name, i, "nan" if np.isnan(value) else "inf") in FINITE_OK:
                return "ok"
            if _nan_expected(name, i, args, ret[0] if ret else None):
                return "ok"
            raise
    return run


# ---- family: NaN semantics against NumPy / PyTorch ----------------------------------------------------

SPECIAL = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -2.5], np.float32)


def case_relu_semantics():
    out = Z(SPECIAL.size)
    lib.act_forward(out, SPECIAL, 0)
    want = np.where(np.isnan(SPECIAL), SPECIAL, np.maximum(SPECIAL, 0))  # torch.relu: NaN stays NaN
    if not np.array_equal(out, want, equal_nan=True):
        raise Wrong(f"relu{SPECIAL} = {out}, expected {want}")
    d = Z(SPECIAL.size)
    lib.act_backward(d, O(SPECIAL.size), SPECIAL, 0)
    want_d = np.where(SPECIAL <= 0, 0.0, 1.0).astype(np.float32)  # threshold_backward: x <= 0 ? 0 : g
    if not np.array_equal(d, want_d):
        raise Wrong(f"relu' = {d}, expected {want_d}")
    return "ok"


def case_leaky_semantics():
    out = Z(SPECIAL.size)
    lib.act_forward(out, SPECIAL, 1, 0.2)
    want = np.where(SPECIAL > 0, SPECIAL, np.float32(0.2) * SPECIAL)
    if not np.array_equal(out, want, equal_nan=True):
        raise Wrong(f"leaky_relu = {out}, expected {want}")
    return "ok"


def case_l1_backward_semantics():
    pred = SPECIAL
    d = Z(pred.size)
    lib.l1_backward(d, pred, Z(pred.size), float(pred.size))
    want = np.sign(pred)  # NumPy: sign(NaN) = NaN
    if not np.array_equal(d, want, equal_nan=True):
        raise Wrong(f"l1_backward = {d}, expected sign = {want}")
    return "ok"


# ---- family: public API ----------------------------------------------------------------------------

def api_nan(make, what="nan"):
    """A public call on non-finite input: raises, or NaN / Inf comes out."""
    def run():
        try:
            out = make()
        except CLEAN:
            return "clean"
        outs = out if isinstance(out, tuple) else (out,)
        if any(o is not None and not np.isfinite(np.asarray(o, np.float64)).all() for o in outs):
            return "ok"
        raise Wrong(f"{what} input, finite output")
    return run


def _api_cases():
    from ubdiff import metrics, ops, physics

    def vel(value):
        v = rng().uniform(-1, 1, (2, 1, 70, 70)).astype(np.float32)
        v[:, :, 10:20, 10:20] = value
        return v

    cases = {}
    for label, value in (("nan", np.nan), ("inf", np.inf)):
        cases[f"ae.encode[{label}]"] = api_nan(lambda v=value: new_ae_model().encode(vel(v)), label)
        cases[f"ae.decode[{label}]"] = api_nan(lambda v=value: new_ae_model().decode(np.full((2, 8), v, np.float32)),
                                               label)
        cases[f"invnet.forward[{label}]"] = api_nan(
            lambda v=value: new_invnet_model().forward(np.full((2, 5, 250, 70), v, np.float32)), label)
        cases[f"diffusion.forward[{label}]"] = api_nan(
            lambda v=value: new_dm_model().forward(np.full((2, 1, 16), v, np.float32), 1), label)
        cases[f"ops.relu[{label}]"] = api_nan(lambda v=value: ops.relu(np.full(5, v, np.float32)), label)
        def speeds(v):
            m = np.full((1, 1, 20, 20), 2000.0, np.float32)
            m[0, 0, 5, 5] = v
            return m

        cases[f"physics.forward_model[{label}]"] = api_nan(
            lambda v=value: physics.forward_model(speeds(v), nt=20, nbc=5, src_x=[3], rec_x=[4, 9]), label)
        cases[f"metrics.features[{label}]"] = api_nan(
            lambda v=value: metrics.extract_features(vel(v), normalized=True), label)
        cases[f"metrics.mae[{label}]"] = api_nan(lambda v=value: metrics.mae(vel(v), vel(0.0)), label)
        cases[f"metrics.ssim[{label}]"] = api_nan(lambda v=value: metrics.ssim(vel(v), vel(0.0)), label)
        cases[f"diffusion.forward_t[{label}]"] = lambda v=value: expect_raise(
            lambda: new_dm_model().forward(R(2, 1, 16), np.array([1.0, v])), ValueError, "finite")
    dmm = cached(new_dm_model)
    cases["diffusion.forward_t_none"] = lambda: expect_raise(lambda: dmm().forward(R(2, 1, 16), None), TypeError)
    cases["diffusion.forward_t_len1"] = lambda: expect_raise(lambda: dmm().forward(R(2, 1, 16), [1.0]), ValueError,
                                                             "shape")
    cases["diffusion.forward_t_len3"] = lambda: expect_raise(lambda: dmm().forward(R(2, 1, 16), [1, 2, 3]), ValueError)
    cases["diffusion.forward_t_str"] = lambda: expect_raise(lambda: dmm().forward(R(2, 1, 16), "1"), TypeError)
    cases["diffusion.loss_grad_scale"] = lambda: expect_raise(
        lambda: dmm().loss(R(2, 1, 16), np.array([1, 2]), R(2, 1, 16), grad_scale=np.inf), ValueError)
    return cases


# ---- family: hyper-parameters ----------------------------------------------------------------------

def snapshot(arrays):
    return [np.array(a, copy=True) for a in arrays]


def unchanged(before, arrays):
    return all(np.array_equal(b, a, equal_nan=True) for b, a in zip(before, arrays))


def case_hparam(make_model, state, step, what):
    """step(model) with one bad hyper-parameter raises ValueError and changes nothing."""
    def run():
        m = make_model()
        before = snapshot(state(m))
        r = expect_raise(lambda: step(m), ValueError, what)
        if not unchanged(before, state(m)):
            raise Wrong("a refused step changed the model")
        return r
    return run


BAD = {"nan": math.nan, "inf": math.inf, "neg": -1.0}


def _hparam_cases():
    cases = {}

    def dm_state(m):
        return [m.flat(k) for k in ("param", "m", "v", "ema")]

    def ae_state(m):
        return [m.flat(k) for k in ("param", "m", "v", "buf")]

    def inv_state(m):
        return [lib.invnet_view(m._h, k) for k in ("param", "m", "v", "stats")]

    def feat_state(h):
        return [lib.featnet_view(h, k) for k in ("param", "m", "v", "stats")]

    z0 = R(2, 1, 16)
    for bad, v in BAD.items():
        for key, kw in (("lr", dict(lr=v)), ("eps", dict(eps=v)), ("weight_decay", dict(weight_decay=v)),
                        ("betas", dict(betas=(v, 0.99))), ("max_grad_norm", dict(max_grad_norm=v)),
                        ("ema_decay", dict(ema_decay=v, ema_every=1))):
            cases[f"LatentDiffusion.train_step[{key}={bad}]"] = case_hparam(
                new_dm_model, dm_state, lambda m, kw=kw: m.train_step(z0, **kw), key.split("_")[0])
            # the same value straight into the binding: the C step refuses it too
            c = dict(lr=1e-4, b1=0.9, b2=0.99, eps=1e-8, wd=0.0, mgn=1.0, ema=0.995)
            c[{"lr": "lr", "eps": "eps", "weight_decay": "wd", "betas": "b1", "max_grad_norm": "mgn",
               "ema_decay": "ema"}[key]] = v
            cases[f"diffusion_train_step[{key}={bad}]"] = case_hparam(
                new_dm_model, dm_state,
                lambda m, c=c: lib.diffusion_train_step(m._h, z0, 2, 1, 0, 0, c["lr"], c["b1"], c["b2"], c["eps"],
                                                        c["wd"], c["mgn"], c["ema"], 1), "")
        vel, seis = R(2, 1, 70, 70), R(2, 1, 16, 8)
        for key, kw in (("lr", dict(lr=v)), ("eps", dict(eps=v)), ("weight_decay", dict(weight_decay=v)),
                        ("betas", dict(betas=(0.9, v))), ("gammas", dict(gammas=(1.0, v, 1.0, 1.0)))):
            cases[f"CoLatentAutoencoder.train_step[{key}={bad}]"] = case_hparam(
                new_ae_model, ae_state, lambda m, kw=kw: m.train_step(vel, seis, mode="step2", **kw),
                key.rstrip("s"))
            adam, g = [1e-4, 0.9, 0.999, 1e-8, 0.0], [1.0, 1.0, 1.0, 1.0]
            if key == "gammas":
                g[1] = v
            else:
                adam[{"lr": 0, "betas": 2, "eps": 3, "weight_decay": 4}[key]] = v
            cases[f"ae_train_step[{key}={bad}]"] = case_hparam(
                new_ae_model, ae_state,
                lambda m, a=tuple(adam), g=tuple(g): lib.ae_train_step(m._h, Z(7), vel, seis, 2, False, a, g), "")
        cases[f"CoLatentAutoencoder.forward_backward[gammas={bad}]"] = case_hparam(
            new_ae_model, ae_state, lambda m: m.forward_backward(vel, seis, mode="step2", gammas=(v, 1, 1, 1)),
            "gamma")
        sx, vx = R(2, 5, 250, 70), R(2, 1, 70, 70)
        for key, kw in (("lr", dict(lr=v)), ("eps", dict(eps=v)), ("weight_decay", dict(weight_decay=v)),
                        ("betas", dict(betas=(v, 0.999))), ("l1_weight", dict(l1_weight=v)),
                        ("mse_weight", dict(mse_weight=v))):
            cases[f"InversionNet.train_step[{key}={bad}]"] = case_hparam(
                new_invnet_model, inv_state, lambda m, kw=kw: m.train_step(sx, vx, **kw), "")
        hp = dict(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, w_l1=1.0, w_mse=1.0)
        for key in hp:
            c = dict(hp, **{key: v})
            cases[f"invnet_train_step[{key}={bad}]"] = case_hparam(
                new_invnet_model, inv_state,
                lambda m, c=c: lib.invnet_train_step(m._h, Z(3), sx, vx, *c.values()), "")
        fp = dict(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, w_reg=1.0)
        for key in fp:
            c = dict(fp, **{key: v})
            cases[f"featnet_train_step[{key}={bad}]"] = case_hparam(
                new_featnet, feat_state,
                lambda h, c=c: lib.featnet_train_step(h, R(2, 1, 8, 8), labels(), None, *c.values()), "")
        p, mm, vv = R(6), Z(6), Z(6)
        for key in ("lr", "b1", "eps", "wd"):
            a = dict(dict(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.0), **{key: v})
            cases[f"adam_update[{key}={bad}]"] = case_hparam(
                lambda: (p.copy(), mm.copy(), vv.copy()), lambda s: list(s),
                lambda s, a=a: lib.adam_update(s[0], s[1], s[2], R(6), 1, *a.values(), True), "")
        cases[f"ema_update[{bad}]"] = case_hparam(lambda: (R(6),), lambda s: list(s),
                                                  lambda s: lib.ema_update(s[0], R(6), v), "decay")
        cases[f"clip_grad_norm[{bad}]"] = case_hparam(lambda: (R(6),), lambda s: list(s),
                                                      lambda s: lib.clip_grad_norm(s[0], v), "max_norm")
    return cases


# ---- the registry ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def registry() -> dict:
    """name -> (family, case function), built without running anything."""
    reg = {}

    def add(family, name, fn):
        assert name not in reg, name
        reg[name] = (family, fn)

    for name, (build, outs) in T.items():
        args = build()
        arrs = float_arrays(args)
        for cuda in ([False, True] if name in CUDA_TWINS else [False]):
            pre = "cuda_" if cuda else ""
            for i in arrs:
                add("bytes", f"bytes:{pre}{name}[{i}]", case_bytes(name, i, cuda))
                for d in range(args[i].ndim):
                    add("huge", f"huge:{pre}{name}[{i}].dim{d}", case_huge(name, i, d, cuda))
            for i in sorted(outs):
                for j in arrs:
                    if j != i:
                        add("alias", f"alias:{pre}{name}[{i}~{j}]", case_alias(name, i, j, cuda))
        if name in MODEL_CALLS:
            for i in arrs:
                for k in range(3):
                    add("alias", f"alias_model:{name}[{i}]~buf{k}", case_alias_model(name, i, k))
        for i, a in enumerate(args):  # inputs only: an overwritten output may rightly end finite
            if (i in arrs and i not in outs) or isinstance(a, float):
                for label, value in (("nan", np.nan), ("inf", np.inf)):
                    add("nan", f"nan:{name}[{i}]={label}", case_nan(name, i, value))
    for name in ("xent_forward", "xent_backward"):
        add("bytes", f"bytes_labels:{name}", case_bytes_labels(name))
    for label, (fn, make) in HUGE_CONSISTENT.items():
        add("huge", f"huge_consistent:{label}", case_huge_consistent(label, fn, make))
    for name, pairs in INPLACE.items():
        for i, j in pairs:
            add("inplace", f"inplace:{name}[{i}={j}]", case_inplace(name, i, j))
    for pos in (0, 1):
        add("sequences", f"seq:forward_model.rec_z[{pos}]", seq_case(_seq_physics(pos)))
        add("sequences", f"seq:diffusion_create.dim_mults[{pos}]", seq_case(_seq_dim_mults(pos)))
        add("sequences", f"seq:featnet_layout.blocks[{pos}]", seq_case(_seq_featnet_blocks(pos)))
        add("sequences", f"seq:invnet_layout.dims[{pos}]", seq_case(_seq_invnet_dims(pos)))
    for pos in (0, 1, 2):
        add("sequences", f"seq:ParamBuffer.add.shape[{pos}]", seq_case(_seq_params_shape(pos)))
    add("sequences", "seq:ae_set_steps.dict", seq_case(_seq_ae_steps))
    add("sequences", "seq:philox4x32_10.counter", seq_case(_seq_philox))
    add("sequences", "seq:forward_model.lying_len", seq_case(_seq_lying_positions))
    add("sequences", "seq:conv2d.stride_list", seq_case(_seq_conv_pair))
    if hasattr(lib, "arena_exercise"):
        add("sequences", "seq:arena_exercise.sizes", seq_case(_seq_arena))
    for n, exc in ((10**6, ValueError), (50000, ValueError), (2**31, ValueError), (2**63, ValueError),
                   (10**30, ValueError), (0, ValueError), (-1, ValueError), (1.5, TypeError), ("2", TypeError),
                   (None, TypeError), (True, TypeError)):
        add("threads", f"threads:set({n!r})", case_threads(n, exc))
    add("threads", "threads:set(max+1)", lambda: case_threads(lib.max_num_threads() + 1, ValueError)())
    add("threads", "threads:set(max)", case_threads_max)
    for name in SEEDED:
        for label, (value, exc) in BAD_SEEDS.items():
            add("seeds", f"seed:{name}[{label}]", case_seed(name, value, exc))
        add("seeds", f"seed:{name}[2**64-1]", case_seed_top(name))
    add("seeds", "seed:rand_offset_wrap", case_rand_wrap)
    add("seeds", "seed:philox_words", case_philox_words)
    add("nan", "nan_semantics:relu", case_relu_semantics)
    add("nan", "nan_semantics:leaky_relu", case_leaky_semantics)
    add("nan", "nan_semantics:l1_backward", case_l1_backward_semantics)
    for name, fn in _api_cases().items():
        add("api", f"api:{name}", fn)
    for name, fn in _hparam_cases().items():
        add("hparams", f"hparams:{name}", fn)
    import fuzz_ae_state  # the autoencoder's state entry points (its own file: tests/fuzz_ae_state.py)
    for name, fn in fuzz_ae_state.build(sys.modules[__name__]).items():
        add("ae_state", f"ae_state:{name}", fn)
    return reg


def run_case(name):
    fam, fn = registry()[name]
    try:
        status, detail = fn(), ""
        if status not in ("clean", "ok"):
            status, detail = "wrong", f"case returned {status!r}"
    except Wrong as e:
        status, detail = "wrong", str(e)
    except Exception as e:  # an unclean exception type (or a broken case)
        status, detail = "error", f"{type(e).__name__}: {e} | " + traceback.format_exc(limit=3).replace("\n", " / ")
    return status, detail


def main(argv):
    if "--list" in argv:
        for name, (fam, _) in registry().items():
            print(f"{fam}\t{name}")
        return 0
    lib.set_num_threads(1)  # the cases are tiny; one thread keeps 2-core CI machines responsive
    for line in sys.stdin:
        name = line.strip()
        if not name:
            continue
        print(f"START\t{name}", flush=True)
        status, detail = run_case(name)
        detail = detail.replace("\t", " ").replace("\n", " ")[:500]
        print(f"RESULT\t{name}\t{status}\t{detail}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
