"""ubdiff.UBDiff end to end on a tiny configuration (seconds on one thread)."""
import os

import numpy as np
import pytest

import ubdiff
from ubdiff import UBDiff, official
from ubdiff.data import OpenFWIDataset, generate_velocity, unbalanced_split
from ubdiff.data import make_dataset
from ubdiff.models import ae_spec

AE = dict(dim1=4, dim2=4, dim3=8, dim4=8, latent=16, head_width=4, heads=2, mlp_hidden=16, nt=50, max_batch=8)
DIFF = dict(dim=8, dim_mults=(1, 2), groups=4, heads=2, dim_head=8, timesteps=32)
CFG = {"autoencoder": AE, "diffusion": DIFF}
FROZEN = ("encoder.", "fc_v.", "batch_norm_v.", "decoder_v.")


@pytest.fixture(autouse=True)
def one_thread():
    # bit-exact comparisons below are between runs in this process; one thread keeps
    # the tests fast on a shared machine (results do not depend on the thread count
    # beyond float rounding, which the comparisons never mix).
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    vel = generate_velocity("flatvel-a", 24, seed=0)
    # a smooth stand-in for seismic records (physics is tested elsewhere): 100 time
    # samples, subsampled ::2 to the model's nt = 50
    t = np.linspace(0, 1, 100, dtype=np.float32)[None, None, :, None]
    seis = (np.sin(20 * t * (vel[:, :, :1, :].mean() / 3000)) * 5
            + rng.normal(0, 0.1, (24, 5, 100, 70))).astype(np.float32)
    return vel, seis


def trained(data, diffusion_steps=3):
    vel, seis = data
    m = UBDiff(CFG, seed=0)
    m.fit_autoencoder(vel, 1, progress=False)
    m.finetune(vel[:12], seis[:12], 1, progress=False)
    m.fit_diffusion(vel, diffusion_steps, batch_size=4, progress=False)
    return m


def flat_state(m):
    ae, d = m.autoencoder, m.diffusion
    return [ae.flat(k).copy() for k in ("param", "m", "v", "buf")] + [d.flat(k).copy() for k in ("param", "ema",
                                                                                                "m", "v")]


# ---- each stage learns ------------------------------------------------------------
def test_stage_losses_decrease(data):
    vel, seis = data
    m = UBDiff(CFG, seed=0)
    h = m.fit_autoencoder(vel[:16], 6, lr=3e-3, progress=False)
    assert h[-1]["total"] < 0.8 * h[0]["total"]
    h = m.finetune(vel[:16], seis[:16], 6, lr=3e-3, progress=False)
    assert h[-1]["total"] < 0.8 * h[0]["total"]
    losses = m.fit_diffusion(vel, 40, batch_size=4, accum=2, lr=3e-3, progress=False)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    w = UBDiff(CFG, seed=1).fit_wo_opt(vel[:16], seis[:16], 6, lr=3e-3, progress=False)
    assert w[-1]["total"] < 0.8 * w[0]["total"] and "velocity" in w[-1] and "seismic" in w[-1]


def test_freeze_keeps_velocity_side_bit_identical(data):
    vel, seis = data
    m = UBDiff(CFG, seed=0)
    m.fit_autoencoder(vel, 1, progress=False)
    before = {k: v.copy() for k, v in m.autoencoder.state_dict().items()}
    m.finetune(vel[:12], seis[:12], 2, freeze=True, progress=False)
    after = m.autoencoder.state_dict()
    for k, v in before.items():
        if k.startswith(FROZEN):
            assert np.array_equal(v, after[k]), k
    assert not np.array_equal(before["fc_s.weight"], after["fc_s.weight"])
    m.finetune(vel[:12], seis[:12], 1, freeze=False, progress=False)
    assert not np.array_equal(before["encoder.convBlock1_1.layers.0.weight"],
                              m.autoencoder.state_dict()["encoder.convBlock1_1.layers.0.weight"])


def test_wo_opt_starts_from_scratch(data):
    vel, seis = data
    a = UBDiff(CFG, seed=0)
    a.fit_autoencoder(vel, 1, progress=False)
    a.fit_wo_opt(vel[:12], seis[:12], 1, progress=False)
    b = UBDiff(CFG, seed=0)
    b.fit_wo_opt(vel[:12], seis[:12], 1, progress=False)
    assert np.array_equal(a.autoencoder.flat(), b.autoencoder.flat())


# ---- exact resume ---------------------------------------------------------------
def test_resume_is_exact(data, tmp_path):
    vel, seis = data
    straight = UBDiff(CFG, seed=3)
    straight.fit_autoencoder(vel, 2, progress=False)
    straight.finetune(vel[:12], seis[:12], 2, progress=False)
    straight.fit_diffusion(vel, 4, batch_size=4, progress=False)

    half = UBDiff(CFG, seed=3)
    half.fit_autoencoder(vel, 1, progress=False)
    half.save(tmp_path / "a")
    half = UBDiff.load(tmp_path / "a")
    half.fit_autoencoder(vel, 1, progress=False)
    half.finetune(vel[:12], seis[:12], 1, progress=False)
    half.save(tmp_path / "b")
    half = UBDiff.load(tmp_path / "b")
    half.finetune(vel[:12], seis[:12], 1, progress=False)
    half.fit_diffusion(vel, 2, batch_size=4, progress=False)
    half.save(tmp_path / "c")
    half = UBDiff.load(tmp_path / "c")
    half.fit_diffusion(vel, 2, batch_size=4, progress=False)

    for a, b in zip(flat_state(straight), flat_state(half)):
        assert np.array_equal(a, b)
    assert straight.history == half.history
    assert straight.state == half.state and straight.constants == half.constants


def test_load_rejects_foreign_folder(tmp_path):
    with pytest.raises(ubdiff.checkpoint.CheckpointError, match="not a UBDiff folder"):
        UBDiff.load(tmp_path)


# ---- sampling and generation --------------------------------------------------------
def test_sample_deterministic_and_chunk_independent(data):
    m = trained(data)
    v1, s1 = m.sample(5, seed=7, sampler="ddim", steps=4)
    v2, s2 = m.sample(5, seed=7, sampler="ddim", steps=4)
    assert np.array_equal(v1, v2) and np.array_equal(s1, s2)
    # (the velocity decoder of a barely trained model hardly depends on z: compare z and seismic)
    v3, s3 = m.sample(5, seed=8, sampler="ddim", steps=4)
    assert not np.array_equal(s1, s3)
    assert not np.array_equal(m.sample(5, seed=7, sampler="ddim", steps=4, decode=False),
                              m.sample(5, seed=8, sampler="ddim", steps=4, decode=False))
    z = m.sample(5, seed=7, sampler="ddpm", decode=False)
    # same chunking (one chunk of 5, with or without progress): the same bits
    assert np.array_equal(m.sample_latents(5, seed=7, progress=True), z)
    # another chunking: the same noise per sample (keyed by global index), but the U-Net's
    # sgemm sees another M and may round differently (README "Reproducibility"). Each of the
    # T = 32 steps may add ~ulp(1) = 1.2e-7 to a latent in [-1, 1]; at most linearly: 32 *
    # 1.2e-7 = 4e-6, so 1e-5 (measured under Haswell: 3e-7). A wrong noise index gives O(1).
    z2 = np.concatenate([m.sample_latents(2, seed=7), m.sample_latents(3, seed=7, first=2)])
    np.testing.assert_allclose(z2, z, rtol=0, atol=1e-5)
    z3 = np.concatenate([m.sample_latents(3, seed=7, first=2), m.sample_latents(2, seed=7)])
    assert np.abs(z3 - z).max() > 1e-2, "samples 0-1 and 2-4 must differ"


def test_decode_in_chunks_gives_the_bits_of_the_whole_set(data):
    """decode denormalises each chunk of max_batch (8 here) as it comes: the same bits as
    decoding every chunk and then denormalising the whole set at once (what it did before)."""
    m = trained(data, diffusion_steps=1)
    z = np.random.default_rng(5).standard_normal((19, AE["latent"])).astype(np.float32)
    parts = [m.autoencoder.decode(z[a:a + 8]) for a in range(0, 19, 8)]
    vn, sn = (np.concatenate([p[i] for p in parts]) for i in (0, 1))
    norm = m._norm(need_seismic=True)

    def bits(a):
        return a.view(np.uint32)
    for zz in (z, z[:, None]):   # (n, latent) and (n, 1, latent) as sample_latents returns
        v, s = m.decode(zz)
        assert v.dtype == s.dtype == np.float32 and v.shape == vn.shape and s.shape == sn.shape
        assert np.array_equal(bits(v), bits(norm.velocity_inverse(vn)))
        assert np.array_equal(bits(s), bits(norm.seismic_inverse(sn)))
        v1, s1 = m.decode(zz, normalized=True)
        assert np.array_equal(bits(v1), bits(vn)) and np.array_equal(bits(s1), bits(sn))


def test_generate_openfwi_layout(data, tmp_path):
    m = trained(data)
    meta = m.generate(7, tmp_path, seed=2, sampler="ddim", steps=3, file_size=3, progress=False)
    assert meta["file_counts"] == [3, 3, 1] and meta["complete"]
    names = sorted(os.listdir(tmp_path))
    assert names == ["data1.npy", "data2.npy", "data3.npy", "model1.npy", "model2.npy", "model3.npy",
                     "ubdiff_dataset.json"]
    assert np.load(tmp_path / "model1.npy").shape == (3, 1, 70, 70)
    assert np.load(tmp_path / "data3.npy").shape == (1, 5, AE["nt"], 70)
    ds = OpenFWIDataset.from_folder(str(tmp_path), seismic_shape=(5, AE["nt"], 70))
    assert len(ds) == 7
    s, v = ds.batch(np.arange(7))
    v0, s0 = m.sample(7, seed=2, sampler="ddim", steps=3)
    # files == one sample() call whatever the file size: the same latents; decoding in batches
    # of another size may change float rounding (BLAS blocking), so decoded values are compared
    # to float32 relative precision of the largest amplitude
    np.testing.assert_allclose(v, v0, rtol=1e-5)
    np.testing.assert_allclose(s, s0, rtol=0, atol=1e-5 * np.abs(s0).max())
    # physical units: the velocity decoder ends in tanh, so maps lie in [label_min, label_max]
    assert v.min() >= 1500 - 1e-3 and v.max() <= 4500 + 1e-3 and v.std() > 0
    # seismic: D_s is not bounded; its output is mapped back with the dataset constants
    zn = m.sample(7, seed=2, sampler="ddim", steps=3, decode=False)
    _, sn = m.decode(zn, normalized=True)
    norm = ubdiff.data.Normalizer(m.constants)
    np.testing.assert_allclose(s0, norm.seismic_inverse(sn), rtol=1e-6)
    assert np.isfinite(s).all() and np.array_equal(np.sign(s0), np.sign(norm.seismic_inverse(sn)))


def test_generate_500_per_file(data, tmp_path):
    m = trained(data)
    meta = m.generate(501, tmp_path, sampler="ddim", steps=1, progress=False)
    assert meta["file_counts"] == [500, 1]
    assert np.load(tmp_path / "model1.npy", mmap_mode="r").shape == (500, 1, 70, 70)


# ---- inputs ----------------------------------------------------------------------------
def test_dataset_inputs(tmp_path):
    rng = np.random.default_rng(0)

    def fake_sim(v, freq, nt, dt):   # stand-in for forward modelling: fast, deterministic
        return (rng.normal(0, 1, (len(v), 5, nt, 70)) * v.mean(axis=(1, 2, 3))[:, None, None, None] / 3000
                ).astype(np.float32)

    make_dataset("flatvel-a", 20, 10, str(tmp_path / "d"), simulate=fake_sim, nt=100, file_size=8,
                 progress=False, preview=False)
    split = unbalanced_split(str(tmp_path / "d"), n_paired=8, seed=0)
    m = UBDiff(CFG, seed=0)
    assert len(m.fit_autoencoder(split, 1, progress=False)) == 1          # all 20 maps
    m.finetune(split, epochs=1, progress=False)                          # the 8 pairs, ::2 in time
    info = ubdiff.data.openfwi.read_meta(str(tmp_path / "d"))
    assert m.constants["data_min"] == info["data_min"] and m.constants["data_max"] == info["data_max"]
    m.fit_diffusion(split.velocity, 2, batch_size=4, progress=False)
    # a normalising dataset gives the same batches as the physical one normalised by the model
    norm_ds = OpenFWIDataset.from_folder(str(tmp_path / "d"), normalize=True)
    m2 = UBDiff(CFG, seed=0)
    m2.finetune(norm_ds.subset(split.paired_index), epochs=1, progress=False)
    m3 = UBDiff(CFG, seed=0)
    m3.finetune(split.paired, epochs=1, progress=False)
    np.testing.assert_allclose(m2.autoencoder.flat(), m3.autoencoder.flat(), rtol=0, atol=1e-6)


def test_bad_inputs(data):
    vel, seis = data
    m = UBDiff(CFG, seed=0)
    with pytest.raises(ValueError, match="m/s"):
        m.fit_autoencoder(ubdiff.data.normalize_velocity(vel), 1, progress=False)
    bad = vel.copy()
    bad[3, 0, 5, 5] = np.nan
    with pytest.raises(ValueError, match="sample 3 holds NaN"):
        m.fit_autoencoder(bad, 1, batch_size=8, progress=False)
    with pytest.raises(ValueError, match=r"\(N, 1, 70, 70\)"):
        m.fit_autoencoder(vel[:, :, :60], 1, progress=False)
    with pytest.raises(ValueError, match="pairs need one of each"):
        m.finetune(vel[:12], seis[:11], 1, progress=False)
    with pytest.raises(ValueError, match="multiple"):
        m.finetune(vel[:12], seis[:12, :, :70], 1, progress=False)
    with pytest.raises(ValueError, match="seismic records are needed"):
        m.finetune(vel[:12], None, 1, progress=False)
    with pytest.raises(ValueError, match="max_batch"):
        m.fit_autoencoder(vel, 1, batch_size=64, progress=False)
    with pytest.raises(ValueError, match="at least 2"):
        m.fit_autoencoder(vel[:1], 1, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        m.fit_autoencoder(vel, -1, progress=False)
    with pytest.raises(TypeError, match="numeric"):
        m.fit_autoencoder(np.array([["a"]]), 1, progress=False)
    with pytest.raises(RuntimeError, match="constants are unknown"):
        m.sample(2)
    with pytest.raises(ValueError, match="ddpm always"):
        m.sample_latents(2, steps=5)
    with pytest.raises(ValueError, match="seq_len"):
        UBDiff({"autoencoder": AE, "diffusion": dict(DIFF, seq_len=32)})
    with pytest.raises(ValueError, match="unknown UBDiff config"):
        UBDiff("huge")
    with pytest.raises(ValueError, match="device must be"):
        UBDiff(CFG, device="gpu")
    if ubdiff.gpu_count() == 0:   # no GPU: an explicit "cuda" is refused, never a silent CPU run
        with pytest.raises(RuntimeError, match="device='cuda'"):
            UBDiff(CFG, device="cuda")


# ---- the authors' state dicts -----------------------------------------------------------------
def test_official_state_dict_round_trip(data):
    m = trained(data)
    m.diffusion.flat("ema")[:] = m.diffusion.flat("param") * 0.5   # EMA != weights: check both travel
    ae_state, diff_state = m.official_state_dict()
    # the authors' VSNet also stores its blocks under aliases (module_list1/2, blocks) and an unused head
    for alias, name in ae_spec.torch_aliases(AE).items():
        ae_state[alias] = ae_state[name]
    head = AE["head_width"] * 5   # their unused classifier head of D_s (Linear -> 1000), skipped on load
    ae_state["decoder_s.decoder.head.weight"] = np.zeros((1000, head), np.float32)
    ae_state["decoder_s.decoder.head.bias"] = np.zeros(1000, np.float32)
    assert "model.init_conv.weight" in diff_state and "betas" in diff_state
    assert isinstance(ae_state["encoder.convBlock1_1.layers.1.num_batches_tracked"], np.int64)
    ema = {k: (v * 0.5 if k.startswith("model.") else v) for k, v in diff_state.items()}
    trainer_ckpt = {"step": 3, "model": diff_state, "ema": {"initted": np.array(True), "step": np.array(3),
                                                           **{"ema_model." + k: v for k, v in ema.items()}}}
    d, e = official.unwrap_diffusion(trainer_ckpt)
    new = UBDiff.from_official_state_dict(official.unwrap_autoencoder({"model": ae_state}), d, config=CFG,
                                          ema_state=e, constants=m.constants)
    assert np.array_equal(new.autoencoder.flat("param"), m.autoencoder.flat("param"))
    assert np.array_equal(new.autoencoder.flat("buf"), m.autoencoder.flat("buf"))
    assert np.array_equal(new.diffusion.flat("ema"), m.diffusion.flat("ema"))
    a = m.sample(3, seed=1, sampler="ddim", steps=4)
    b = new.sample(3, seed=1, sampler="ddim", steps=4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_official_state_dict_errors(data):
    m = UBDiff(CFG, seed=0)
    ae_state, diff_state = m.official_state_dict()
    with pytest.raises(KeyError, match="missing"):
        UBDiff.from_official_state_dict({k: v for k, v in ae_state.items() if k != "fc_v.weight"}, diff_state, CFG)
    bad = dict(ae_state, **{"fc_v.weight": np.zeros((3, 3), np.float32)})
    with pytest.raises(ValueError, match="fc_v.weight"):
        UBDiff.from_official_state_dict(bad, diff_state, CFG)
    with pytest.raises(KeyError, match="missing"):
        UBDiff.from_official_state_dict(ae_state, {k: v for k, v in diff_state.items()
                                                   if k != "model.final_conv.bias"}, CFG)
    bad = dict(diff_state, **{"model.final_conv.bias": np.zeros(7, np.float32)})
    with pytest.raises(ValueError, match="final_conv.bias"):
        UBDiff.from_official_state_dict(ae_state, bad, CFG)
    linear = dict(diff_state, betas=np.linspace(1e-4, 0.02, DIFF["timesteps"]).astype(np.float32))
    with pytest.raises(ValueError, match="cosine"):
        UBDiff.from_official_state_dict(ae_state, linear, CFG)
    with pytest.raises(ValueError, match="steps"):
        UBDiff.from_official_state_dict(ae_state, dict(diff_state, betas=np.zeros(10, np.float32)), CFG)
    with pytest.raises(KeyError, match="betas"):
        UBDiff.from_official_state_dict(ae_state, {k: v for k, v in diff_state.items() if k != "betas"}, CFG)
    with pytest.raises(KeyError, match="unexpected"):
        UBDiff.from_official_state_dict(ae_state, dict(diff_state, **{"model.extra.weight": np.zeros(1)}), CFG)


def test_paper_hyperparameters():
    from ubdiff.pipeline import paper_hyperparameters
    assert paper_hyperparameters("flatvel-a") == {"lr": 1e-4, "lr_decay": 0.9}
    assert paper_hyperparameters("FlatFault-A") == {"lr": 1e-4, "lr_decay": 0.98}
    assert paper_hyperparameters("curvevel-a") == {"lr": 5e-4, "lr_decay": 0.995}
    assert paper_hyperparameters("curvefault-b") == {"lr": 1e-4, "lr_decay": 0.995}
