"""The pixel-space DDPM baseline on velocity maps (ubdiff/models/ddpm.py): the
latent diffusion's C code (csrc/models/diffusion.c) over the 2-D U-Net through
the denoiser interface (csrc/models/denoiser.h). Tiny maps keep it fast; the
"small" / "paper" configurations are checked for their structure only."""
import numpy as np
import pytest
from cuda_util import assert_gpu_matches_cpu, requires_gpu

import ubdiff
from ubdiff.models.ddpm import CONFIGS, PAPER_NUM_PARAMETERS, SMALL_NUM_PARAMETERS, VelocityDDPM, resolve_config
from ubdiff.models.unet2d import UNet2D, count_parameters

#: two levels (factor 2): 10 x 11 maps padded to 10 x 12 inside the network; 16 steps
TINY = {"base": "small", "dim": 8, "dim_mults": (1, 2), "height": 10, "width": 11, "groups": 4, "heads": 2,
        "dim_head": 8, "timesteps": 16}
LO, HI = 1500.0, 4500.0


@pytest.fixture(autouse=True)
def one_thread():
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


def layered(rng, n, H=10, W=11):
    """Velocity maps (n, 1, H, W) in m/s: a few flat layers increasing with depth, random interfaces."""
    v = np.empty((n, 1, H, W), np.float32)
    for i in range(n):
        cuts = np.sort(rng.choice(np.arange(1, H), 2, replace=False))
        vals = np.sort(rng.uniform(LO, HI, 3))
        v[i, 0] = vals[np.searchsorted(cuts, np.arange(H), side="right")][:, None]
    return v


def test_configs_are_the_unet_presets_with_t_256():
    for name in ("paper", "small"):
        c = resolve_config(name)
        assert c["timesteps"] == 256 and (c["height"], c["width"], c["channels"]) == (70, 70, 1)
        assert c["dim_mults"] == (1, 2, 4, 8) and c["full_attn"] == (False, False, False, True)
    assert CONFIGS["paper"]["dim"] == 64 and CONFIGS["small"]["dim"] == 16
    assert count_parameters({k: v for k, v in CONFIGS["paper"].items() if k != "timesteps"}) == PAPER_NUM_PARAMETERS
    m = VelocityDDPM("small", max_batch=1, device="cpu")
    assert m.num_parameters() == SMALL_NUM_PARAMETERS
    assert m.sample_shape == (1, 70, 70) and m.timesteps == 256
    assert m.spec()[0][0] == "init_conv.weight"            # the Unet's state_dict keys
    with pytest.raises(ValueError, match="unknown config 'big'"):
        VelocityDDPM("big")
    with pytest.raises(ValueError, match="unknown config keys"):
        VelocityDDPM({"seq_len": 128})
    with pytest.raises(ValueError, match="timesteps must be >= 1"):
        VelocityDDPM(dict(TINY, timesteps=0))


def test_loss_is_the_v_objective_of_the_unet2d():
    """The diffusion's loss on maps equals a NumPy v-prediction loss around the same 2-D U-Net
    (UNet2D with the DDPM's weights): q_sample, the v target and the snr/(snr+1) weight are the
    flat ops of the latent diffusion, the network the 2-D one."""
    rng = np.random.default_rng(0)
    m = VelocityDDPM(TINY, seed=3, max_batch=4, device="cpu")
    net = UNet2D({k: v for k, v in TINY.items() if k != "timesteps"}, max_batch=4, device="cpu")
    net.load_state_dict(m.state_dict())
    z0 = np.clip(rng.standard_normal((4, 1, 10, 11)), -1, 1).astype(np.float32)
    noise = rng.standard_normal(z0.shape).astype(np.float32)
    t = np.array([0, 3, 9, 15])
    S = m.schedule
    sa = S["sqrt_alphas_cumprod"][t].astype(np.float32)[:, None, None, None]
    s1 = S["sqrt_one_minus_alphas_cumprod"][t].astype(np.float32)[:, None, None, None]
    xt, v = sa * z0 + s1 * noise, sa * noise - s1 * z0
    pred = net.forward(xt, t.astype(np.float32))
    per_ref = S["loss_weight"][t] * ((pred.astype(np.float64) - v) ** 2).mean(axis=(1, 2, 3))
    loss, per = m.loss(z0, t, noise)
    # float32 sums of 110 squares vs float64 ones: a few ulps of the loss
    np.testing.assert_allclose(per, per_ref, rtol=1e-5, atol=1e-7)
    assert loss == pytest.approx(per_ref.mean(), rel=1e-5)
    # and its gradient is the 2-D U-Net's backward of d loss / d pred
    m.zero_grad()
    m.loss(z0, t, noise, grad_scale=1.0)
    dpred = (2.0 / (4 * 110)) * S["loss_weight"][t][:, None, None, None] * (pred.astype(np.float64) - v)
    net.zero_grad()
    net.forward(xt, t.astype(np.float32))
    net.backward(dpred.astype(np.float32))
    g, g_ref = m.get_tensor(kind="grad"), net.get_tensor(kind="grad")
    np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-6 * np.abs(g_ref).max())


def test_fit_lowers_the_loss():
    rng = np.random.default_rng(1)
    maps = layered(rng, 32)
    m = VelocityDDPM(TINY, seed=0, max_batch=8, device="cpu")
    z0 = m._maps(maps[:8])
    t = np.arange(8) * 2
    noise = np.random.default_rng(2).standard_normal(z0.shape).astype(np.float32)
    before = m.loss(z0, t, noise)[0]
    losses = m.fit(maps, 40, batch_size=8, lr=2e-3)
    after = m.loss(z0, t, noise)[0]
    assert len(losses) == 40 and m.step == 40 and np.isfinite(losses).all()
    assert after < 0.5 * before, (before, after)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])


def test_sampling_shape_range_and_seeds():
    rng = np.random.default_rng(2)
    m = VelocityDDPM(TINY, seed=0, max_batch=4, device="cpu", velocity_range=(LO, HI))
    m.fit(layered(rng, 8), 3, batch_size=4, lr=1e-3)
    a = m.sample(5, seed=7, sampler="ddim", steps=4)
    assert a.shape == (5, 1, 10, 11) and a.dtype == np.float32
    assert a.min() >= -1.0 and a.max() <= 1.0              # DDIM's last step is the clamped x0
    np.testing.assert_array_equal(a, m.sample(5, seed=7, sampler="ddim", steps=4))
    assert not np.array_equal(a, m.sample(5, seed=8, sampler="ddim", steps=4))
    # sample j draws the noise of global index j: chunks of 4 vs one call from first=3
    np.testing.assert_allclose(m.sample(2, seed=7, sampler="ddim", steps=4, first=3), a[3:], rtol=1e-5, atol=1e-6)
    v = m.generate(3, seed=1, progress=lambda done, total: None)     # ancestral DDPM over all T
    assert v.shape == (3, 1, 10, 11) and np.isfinite(v).all()
    # the last DDPM step adds no noise and its posterior mean at t = 0 is the clamped x0 itself
    # (coef1 = 1, coef2 = 0 exactly): the maps lie in the velocity range, up to the float32
    # rounding of mapping [-1, 1] back to m/s
    assert m.schedule["posterior_mean_coef1"][0] == 1.0 and m.schedule["posterior_mean_coef2"][0] == 0.0
    assert v.min() >= LO - 1e-3 and v.max() <= HI + 1e-3
    np.testing.assert_array_equal(v, m.generate(3, seed=1))


def test_checkpoint_round_trip_and_resume(tmp_path):
    rng = np.random.default_rng(3)
    maps = layered(rng, 12)
    a = VelocityDDPM(TINY, seed=4, max_batch=4, device="cpu", velocity_range=(1000.0, 5000.0))
    a.fit(maps, 4, batch_size=4, lr=1e-3)                  # 3 batches per epoch: crosses an epoch
    a.save(str(tmp_path / "ddpm.safetensors"))
    b = VelocityDDPM.load(str(tmp_path / "ddpm.safetensors"), device="cpu")
    assert b.config == a.config and b.step == 4 and b.velocity_range == (1000.0, 5000.0)
    for kind in ("param", "ema", "m", "v"):
        np.testing.assert_array_equal(b.get_tensor(kind=kind), a.get_tensor(kind=kind))
    np.testing.assert_array_equal(b.sample(2, seed=1, sampler="ddim", steps=3),
                                  a.sample(2, seed=1, sampler="ddim", steps=3))
    # resuming continues the run exactly: 4 + 3 steps = 7 steps in one go
    la, lb = a.fit(maps, 3, batch_size=4, lr=1e-3), b.fit(maps, 3, batch_size=4, lr=1e-3)
    c = VelocityDDPM(TINY, seed=4, max_batch=4, device="cpu", velocity_range=(1000.0, 5000.0))
    lc = c.fit(maps, 7, batch_size=4, lr=1e-3)
    assert la == lb == lc[4:]
    np.testing.assert_array_equal(b.get_tensor(), c.get_tensor())
    from ubdiff import checkpoint
    from ubdiff.models.diffusion import LatentDiffusion
    with pytest.raises(checkpoint.CheckpointError, match="velocity_ddpm"):
        LatentDiffusion.load(str(tmp_path / "ddpm.safetensors"), device="cpu")


def test_clear_errors():
    m = VelocityDDPM(TINY, max_batch=2, device="cpu")
    maps = layered(np.random.default_rng(0), 4)
    with pytest.raises(ValueError, match=r"velocity must have shape \(N, 1, 10, 11\) or \(N, 10, 11\)"):
        m.fit(maps[:, :, :9], 1, batch_size=2)
    with pytest.raises(ValueError, match="batch_size 4 exceeds max_batch 2"):
        m.fit(maps, 1, batch_size=4)
    with pytest.raises(ValueError, match="exceeds the 4 maps"):
        m.fit(maps, 1, batch_size=2, accum=3)
    bad = maps.copy()
    bad[:, 0, 0, 0] = np.nan                               # every batch holds one
    with pytest.raises(ValueError, match="velocity must be finite"):
        m.fit(bad, 1, batch_size=2)
    assert m.step == 0                                     # raised before the step
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 10, 11\)"):
        m.forward(np.zeros((1, 1, 10, 10), np.float32), 0)
    with pytest.raises(ValueError, match="velocity_range"):
        VelocityDDPM(TINY, velocity_range=(3000, 2000), device="cpu")
    with pytest.raises(ValueError, match="ddpm always takes all T = 16 steps"):
        m.sample(1, steps=4)
    m.fit(maps[:, 0], 1, batch_size=2)                      # (N, H, W) maps are taken too
    assert m.step == 1


def test_fit_reads_memmaps_in_batches(tmp_path):
    """A memmap of m/s maps trains exactly as the same array in memory."""
    maps = layered(np.random.default_rng(6), 8)
    np.save(tmp_path / "v.npy", maps)
    mm = np.load(tmp_path / "v.npy", mmap_mode="r")
    a, b = (VelocityDDPM(TINY, seed=1, max_batch=4, device="cpu") for _ in range(2))
    assert a.fit(maps, 3, batch_size=4, lr=1e-3) == b.fit(mm, 3, batch_size=4, lr=1e-3)
    np.testing.assert_array_equal(a.get_tensor(), b.get_tensor())


def test_latent_diffusion_still_takes_its_shapes():
    """The 1-D model behind the same bindings: its sample shape and messages are unchanged."""
    from ubdiff.models.diffusion import LatentDiffusion
    m = LatentDiffusion({"dim": 8, "dim_mults": (1, 2), "seq_len": 16, "groups": 4, "timesteps": 8}, max_batch=2,
                        device="cpu")
    assert m.sample_shape == (1, 16)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 16\)"):
        m.forward(np.zeros((1, 1, 10, 11), np.float32), 0)
    assert m.sample(2, seed=0, sampler="ddim", steps=2).shape == (2, 1, 16)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_gpu)])
def test_device_selection(device):
    m = VelocityDDPM(TINY, max_batch=2, device=device)
    assert m.device == device
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'auto', got 'gpu'"):
        VelocityDDPM(TINY, device="gpu")


@requires_gpu
def test_cuda_training_and_sampling_match_cpu():
    """Same init (keyed Philox), same draws: three training steps and a DDIM run agree within
    float rounding of the two devices' kernels (parameters within 2 lr per Adam step)."""
    rng = np.random.default_rng(5)
    maps = layered(rng, 8)
    cpu, gpu = (VelocityDDPM(TINY, seed=2, max_batch=4, device=d) for d in ("cpu", "cuda"))
    np.testing.assert_array_equal(gpu.get_tensor(), cpu.get_tensor())
    lr = 1e-4
    lc, lg = cpu.fit(maps, 3, batch_size=4, lr=lr), gpu.fit(maps, 3, batch_size=4, lr=lr)
    np.testing.assert_allclose(lg, lc, rtol=1e-3)
    assert np.abs(gpu.get_tensor() - cpu.get_tensor()).max() <= 2 * 3 * lr * 1.01
    gpu.load_state_dict(cpu.state_dict())
    gpu.load_state_dict(cpu.state_dict("ema"), kind="ema")
    sc, sg = (m.sample(3, seed=1, sampler="ddim", steps=4) for m in (cpu, gpu))
    assert_gpu_matches_cpu(sg, sc, rtol=1e-3, atol=1e-3, what="ddim samples")


def test_compare_method_trains_resumes_and_generates(tmp_path):
    """The "ddpm" method of `python -m ubdiff compare` at the tiny scale: trained to its plan's
    steps, Table 4 gets its row; a rerun after losing trained.json and the samples loads the
    checkpoint (no step retrained) and draws the same samples."""
    import json
    import os

    from ubdiff import compare
    from ubdiff.compare import scales
    from ubdiff.data import open_npy
    out = str(tmp_path / "c")
    r = compare.run(out, scale="tiny", methods="ddpm", progress=False, make_figures=False)
    assert [row["method"] for row in r["tables"]["table4"]["rows"]] == ["ddpm", "real"]
    folder = os.path.join(out, "methods", "ddpm")
    m = VelocityDDPM.load(os.path.join(folder, "ddpm.safetensors"), device="cpu")
    assert m.step == scales.SCALES["tiny"]["ddpm"]["steps"] and m.config == resolve_config("small")
    first = open_npy(os.path.join(folder, "samples", "model1.npy"))
    assert first.shape == (scales.SCALES["tiny"]["samples"], 1, 70, 70)
    with open(os.path.join(folder, "samples", "ubdiff_dataset.json")) as f:
        assert json.load(f)["method"] == "ddpm"
    import shutil
    os.remove(os.path.join(folder, "trained.json"))
    shutil.rmtree(os.path.join(folder, "samples"))
    compare.run(out, scale="tiny", methods="ddpm", progress=False, make_figures=False)
    assert VelocityDDPM.load(os.path.join(folder, "ddpm.safetensors"), device="cpu").step == m.step
    np.testing.assert_array_equal(open_npy(os.path.join(folder, "samples", "model1.npy")), first)
