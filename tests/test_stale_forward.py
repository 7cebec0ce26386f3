"""A backward differentiates the activations its model saved in the last forward. Once the
weights (or the BatchNorm statistics) change in between -- an optimiser step, set_tensor,
load_state_dict, re-initialisation, a zeroing, a re-sized arena, a sampling run -- those
activations belong to the old weights, and every model forgets them (its C forget_forward):
the backward raises the model's "needs a ... forward" error instead of returning the
gradients of the old weights. Writes that do not concern the forward (gradients, Adam
moments) leave the saved forward alone, and forward -> backward gives the same bits as
before. After a change, a new forward gives the gradients of the new weights: those of a
model that had them from the start.

Writes through the CPU models' zero-copy NumPy views are not seen (documented with the
views): these tests go through the models' calls only.
"""
import numpy as np
import pytest

import ubdiff
from cuda_util import requires_gpu
from ubdiff._native import lib
from ubdiff.metrics.featnet import FeatureNet
from ubdiff.models.autoencoder import CoLatentAutoencoder
from ubdiff.models.ddpm import VelocityDDPM
from ubdiff.models.diffusion import LatentDiffusion
from ubdiff.models.inversionnet import InversionNet
from ubdiff.models.seis_encoder import SeismicEncoder
from ubdiff.models.unet2d import UNet2D

# the tiny configurations of the models' own test files
U2 = {"dim": 4, "dim_mults": (1, 2), "full_attn": (False, True), "channels": 1, "height": 5, "width": 6,
      "groups": 2, "heads": 2, "dim_head": 3}
LD = dict(dim=8, dim_mults=(1, 2), seq_len=8, groups=2, heads=2, dim_head=4, timesteps=16)
DD = {"base": "small", "dim": 8, "dim_mults": (1, 2), "height": 10, "width": 11, "groups": 4, "heads": 2,
      "dim_head": 8, "timesteps": 16}
IN = {"base": "small", "dims": (2, 3, 4, 4, 4), "nt": 32, "nx": 8}
SE = {"base": "small", "dims": (2, 3, 4, 4), "latent": 4, "nt": 32, "nx": 8}
FN = dict(in_shape=(2, 9, 8), blocks=[(3, 3, 3, 1, 1, 1, 1), (4, 3, 3, 2, 2, 1, 1), (5, 3, 1, 2, 1, 1, 0)],
          n_classes=3, n_reg=2, max_batch=6)
AE = dict(dim1=2, dim2=3, dim3=4, dim4=4, latent=3, head_width=2, dd_v=1, shots=2, nt=6, nr=5, heads=2, depth=2,
          mlp_hidden=6, max_batch=4)
B = 3
DEVICES = ["cpu", pytest.param("cuda", marks=requires_gpu)]


@pytest.fixture(autouse=True)
def one_thread():
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


def _arr(seed, shape, lo=None, hi=None):
    rng = np.random.default_rng(seed)
    a = rng.uniform(lo, hi, shape) if lo is not None else rng.normal(size=shape)
    return np.ascontiguousarray(a, np.float32)


def _nudge(a, seed=1):
    """a + a small random change (so the change matters to the gradients)."""
    return (a + 0.01 * _arr(seed, a.shape)).astype(np.float32)


class Spec:
    """One model kind: how to build it, run a training forward and its backward, read its
    gradients, which tensor kinds the forward reads (``weights``), the calls that change the
    weights (``changes``) and those that must not disturb the saved forward (``keeps``)."""

    def __init__(self, name, make, fwd, bwd, error, weights, changes, keeps):
        self.name, self.make, self.fwd, self.bwd, self.error = name, make, fwd, bwd, error
        self.weights, self.changes, self.keeps = weights, changes, keeps

    def __repr__(self):
        return self.name


def _set_one(kind):
    """set_tensor of the first tensor of `kind` to a nudged copy."""
    def change(m, spec):
        name = spec.first[kind](m)
        m.set_tensor(name, _nudge(m.get_tensor(name, kind)), kind)
    return change


def _set_all(kind):
    """set_tensor of the whole flat buffer `kind` (name None)."""
    return lambda m, spec: m.set_tensor(None, _nudge(m.get_tensor(None, kind), 2), kind)


def _keep_sets():
    """Writes of gradients and Adam moments: the forward read none of them."""
    return {
        "nothing": lambda m: None,
        "zero_grad": lambda m: m.zero_grad(),
        "set grad": lambda m: m.set_tensor(None, _arr(3, m.get_tensor(None, "grad").shape), "grad"),
        "set m": lambda m: m.set_tensor(None, _arr(4, m.get_tensor(None, "m").shape), "m"),
        "set v": lambda m: m.set_tensor(None, _arr(5, m.get_tensor(None, "v").shape, 0.0, 1.0), "v"),
    }


# ---- the models -------------------------------------------------------------------------------
def unet2d_spec():
    x, t = _arr(10, (B, 1, 5, 6)), np.array([3.0, 40.0, 7.0], np.float32)
    d = _arr(11, (B, 1, 5, 6))
    names = lambda m: list(m.parameters())  # noqa: E731
    s = Spec("UNet2D",
             lambda device="cpu": UNet2D(U2, seed=1, max_batch=B, device=device),
             lambda m: m.forward(x, t), lambda m: m.backward(d), "needs a preceding forward", ("param", "ema"),
             {"set_tensor param": _set_one("param"), "set_tensor ema": _set_one("ema"),
              "set_tensor whole param buffer": _set_all("param"),
              "load_state_dict": lambda m, s: m.load_state_dict({k: _nudge(v) for k, v in m.state_dict().items()}),
              "load_state_dict ema": lambda m, s: m.load_state_dict(m.state_dict(), weights="ema"),
              "train_step": lambda m, s: m.train_step(x, t, d),
              "zero param": lambda m, s: lib.unet2d_zero(m._h, "param"),
              "init": lambda m, s: lib.unet2d_init(m._h, 7),
              "reserve": lambda m, s: m._grow(B + 2)},
             _keep_sets())
    s.first = {"param": lambda m: names(m)[0], "ema": lambda m: names(m)[0]}
    return s


def _diffusion_spec(name, make, shape):
    x, d = _arr(20, (B,) + shape), _arr(21, (B,) + shape)
    t = np.array([1, 5, 9])
    z0 = _arr(22, (B,) + shape)
    s = Spec(name, make, lambda m: m.forward(x, t), lambda m: m.backward(d), "needs a preceding forward",
             ("param", "ema"),
             {"set_tensor param": _set_one("param"), "set_tensor ema": _set_one("ema"),
              "set_tensor whole param buffer": _set_all("param"),
              "set_tensor whole ema buffer (an EMA copy)": lambda m, s: m.set_tensor(None, m.get_tensor(None, "param"),
                                                                                    "ema"),
              "load_state_dict": lambda m, s: m.load_state_dict({k: _nudge(v) for k, v in m.state_dict().items()}),
              "load_state_dict ema": lambda m, s: m.load_state_dict(m.state_dict(), kind="ema"),
              "reinit": lambda m, s: m.reinit(3),
              "train_step": lambda m, s: m.train_step(z0),
              "apply_update": lambda m, s: m.apply_update(),
              "zero param": lambda m, s: lib.diffusion_zero(m._h, "param"),
              "sample": lambda m, s: m.sample(2, seed=1),
              "sample with the EMA": lambda m, s: m.sample(2, seed=1, use_ema=True)},
             _keep_sets())
    s.first = {"param": lambda m: m.spec()[0][0], "ema": lambda m: m.spec()[0][0]}
    return s


def latent_diffusion_spec():
    return _diffusion_spec("LatentDiffusion (unet1d)",
                           lambda device="cpu": LatentDiffusion(LD, seed=0, max_batch=B, device=device), (1, 8))


def ddpm_spec():
    return _diffusion_spec("VelocityDDPM (unet2d)",
                           lambda device="cpu": VelocityDDPM(DD, seed=3, max_batch=B, device=device), (1, 10, 11))


def inversionnet_spec():
    s_in = _arr(30, (B, 5, 32, 8))
    v = _arr(31, (B, 1, 70, 70), -1.0, 1.0)
    d = _arr(32, (B, 1, 70, 70))
    s = Spec("InversionNet",
             lambda device="cpu": InversionNet(IN, seed=1, max_batch=B, device=device),
             lambda m: m.forward(s_in, train=True), lambda m: m.backward(d, s_in),
             "backward needs a training forward", ("param", "stats"),
             {"set_tensor param": _set_one("param"), "set_tensor stats": _set_one("stats"),
              "set_tensor whole param buffer": _set_all("param"),
              "load_state_dict": lambda m, s: m.load_state_dict({k: _nudge(v) for k, v in m.state_dict().items()}),
              "train_step": lambda m, s: m.train_step(s_in, v),
              "apply_update": lambda m, s: m.apply_update(),
              "zero param": lambda m, s: lib.invnet_zero(m._h, "param"),
              "init": lambda m, s: lib.invnet_init(m._h, 4),
              "reserve": lambda m, s: m._grow(B + 2)},
             _keep_sets())
    s.first = {"param": lambda m: list(m.state_dict())[0], "stats": lambda m: m._stat_names[0]}
    return s


def seis_encoder_spec():
    s_in = _arr(40, (B, 5, 32, 8))
    d = _arr(41, (B, 4))
    s = Spec("SeismicEncoder",
             lambda device="cpu": SeismicEncoder(SE, seed=2, max_batch=B, device=device),
             lambda m: m.encode(s_in, training=True), lambda m: m.backward(d, s_in),
             "backward needs a training forward", ("param", "stats"),
             {"set_tensor param": _set_one("param"), "set_tensor stats": _set_one("stats"),
              "set_tensor whole param buffer": _set_all("param"),
              "load_tensors": lambda m, s: m.load_tensors({k: _nudge(v) for k, v in m.tensors().items()}, m.step),
              "apply_update": lambda m, s: m.apply_update(),
              "zero param": lambda m, s: lib.seisenc_zero(m._h, "param"),
              "init": lambda m, s: m.init(5),
              "reserve": lambda m, s: lib.seisenc_reserve(m._h, B + 2)},
             _keep_sets())
    s.first = {"param": lambda m: m.parameter_names()[0], "stats": lambda m: m.buffer_names()[0]}
    return s


def featnet_spec():
    x = _arr(50, (B, 2, 9, 8))
    df, dl, dr = _arr(51, (B, 5)), _arr(52, (B, 3)), _arr(53, (B, 2))
    labels, rt = np.array([0, 2, 1]), _arr(54, (B, 2))
    s = Spec("FeatureNet",
             lambda device="cpu": FeatureNet(FN, seed=3, device=device),
             lambda m: m.forward(x, train=True), lambda m: m.backward(x, df, dl, dr),
             "backward needs a training forward", ("param", "stats"),
             {"set_tensor param": _set_one("param"), "set_tensor stats": _set_one("stats"),
              "set_tensor whole param buffer": _set_all("param"),
              "train_step": lambda m, s: m.train_step(x, labels, rt),
              "apply_gradients": lambda m, s: m.apply_gradients(),
              "zero param": lambda m, s: lib.featnet_zero(m._h, "param")},
             _keep_sets())
    s.first = {"param": lambda m: list(m.params)[0], "stats": lambda m: list(m.stats)[0]}
    return s


def autoencoder_spec():
    vel = _arr(60, (B, 1, 70, 70), -1.0, 1.0)
    seis = _arr(61, (B, 2, 6, 5), -1.0, 1.0)
    dz = _arr(62, (B, 3))
    s = Spec("CoLatentAutoencoder (E)",
             lambda device="cpu": CoLatentAutoencoder(AE, seed=0, device=device),
             lambda m: m.encode(vel, training=True), lambda m: m.encode_backward(dz, vel),
             "encode_backward needs a training-mode encode", ("param", "buf"),
             {"set_tensor param": _set_one("param"), "set_tensor buf": _set_one("buf"),
              "set_tensor whole param buffer": _set_all("param"),
              "load_state_dict": lambda m, s: m.load_state_dict(
                  {k: (_nudge(v) if k in m.parameter_names() else v) for k, v in m.state_dict().items()}),
              "train_step": lambda m, s: m.train_step(vel, seis, mode="step1"),
              "apply_update": lambda m, s: m.apply_update("step1"),
              "apply_update step2": lambda m, s: m.apply_update("step2"),
              "zero param": lambda m, s: lib.ae_zero(m._handle(), "param"),
              "init": lambda m, s: m.init(6)},
             dict(_keep_sets(), **{"reset_optimizer": lambda m: m.reset_optimizer(),
                                   "decode (eval)": lambda m: m.decode(np.zeros((B, 3), np.float32))}))
    s.first = {"param": lambda m: m.parameter_names()[0],
               "buf": lambda m: [n for n in m.buffer_names() if "running_mean" in n][0]}
    return s


SPECS = [unet2d_spec(), latent_diffusion_spec(), ddpm_spec(), inversionnet_spec(), seis_encoder_spec(),
         featnet_spec(), autoencoder_spec()]
CHANGES = [pytest.param(s, c, id=f"{s.name}-{c}") for s in SPECS for c in s.changes]
KEEPS = [pytest.param(s, k, id=f"{s.name}-{k}") for s in SPECS for k in s.keeps]


def _grads(m):
    return m.get_tensor(None, "grad")


def _copy_weights(src, dst, spec):
    """dst := src's weights and statistics (every kind the forward reads)."""
    for kind in spec.weights:
        dst.set_tensor(None, src.get_tensor(None, kind), kind)


# ---- the tests --------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,change", CHANGES)
def test_a_change_of_the_weights_forgets_the_forward(spec, change):
    m = spec.make()
    spec.fwd(m)
    spec.changes[change](m, spec)
    with pytest.raises((ValueError, RuntimeError), match=spec.error):
        spec.bwd(m)
    # a new forward: the gradients are those of the new weights, as a model that had them from the start
    twin = spec.make()
    _copy_weights(m, twin, spec)
    for net in (m, twin):
        spec.fwd(net)
        net.zero_grad()
        spec.bwd(net)
    np.testing.assert_array_equal(_grads(m), _grads(twin))


@pytest.mark.parametrize("spec,keep", KEEPS)
def test_writes_the_forward_did_not_read_keep_it(spec, keep):
    """forward -> (gradients / Adam moments written) -> backward works, with the bits of a plain
    forward -> backward of the same model (the code before the change gave these too)."""
    a, b = spec.make(), spec.make()
    spec.fwd(a)
    spec.fwd(b)
    spec.keeps[keep](b)
    a.zero_grad()
    b.zero_grad()
    spec.bwd(a)
    spec.bwd(b)
    np.testing.assert_array_equal(_grads(a), _grads(b))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_set_tensor_forgets_on_every_device(spec, device):
    m = spec.make(device)
    spec.fwd(m)
    spec.bwd(m)  # a backward of an unchanged forward works
    kind = spec.weights[0]
    name = spec.first[kind](m)
    m.set_tensor(name, _nudge(m.get_tensor(name, kind)), kind)
    with pytest.raises((ValueError, RuntimeError), match=spec.error):
        spec.bwd(m)
    spec.fwd(m)
    spec.bwd(m)


@pytest.mark.parametrize("device", DEVICES)
def test_a_sampling_run_between_forward_and_backward_forgets_it(device):
    """Sampling overwrites the denoiser's activations; on a GPU a replayed graph does so
    without the host noticing. forward -> sample -> backward raises, also when the sampling
    chunk has the forward's batch size and the graph was captured before the forward."""
    m = LatentDiffusion(LD, seed=0, max_batch=B, device=device)
    x, d, t = _arr(70, (B, 1, 8)), _arr(71, (B, 1, 8)), np.array([1, 5, 9])
    m.sample(B, seed=2)                    # warms (captures) the sampling step for B samples
    m.forward(x, t)
    m.sample(B, seed=2)                    # replays it
    with pytest.raises(ValueError, match="needs a preceding forward"):
        m.backward(d)
    m.forward(x, t)
    m.backward(d)


def test_inversionnet_apply_update_is_the_adamw_step_of_train_step():
    """apply_update runs in C now (it forgets the forward): zero_grad + forward_backward +
    apply_update is train_step, bit for bit, and the step counter advances."""
    s_in, v = _arr(80, (B, 5, 32, 8)), _arr(81, (B, 1, 70, 70), -1.0, 1.0)
    a, b = (InversionNet(IN, seed=1, max_batch=B, device="cpu") for _ in range(2))
    for _ in range(2):
        a.train_step(s_in, v, lr=1e-3)
        b.zero_grad()
        b.forward_backward(s_in, v)
        b.apply_update(lr=1e-3)
    assert a.step == b.step == 2
    for kind in ("param", "m", "v"):
        np.testing.assert_array_equal(a.get_tensor(None, kind), b.get_tensor(None, kind))
