"""UBDiff(device=...), UBDiff.load(path, device=...), the CLI's --device, and the evaluation's
device: both networks on one backend, run folders interchangeable between devices (CPU side here;
the CUDA cases skip with the printed reason where no GPU is visible)."""
import json
import os

import numpy as np
import pytest
from cuda_util import assert_gpu_matches_cpu, requires_gpu

import ubdiff
from ubdiff import UBDiff, checkpoint
from ubdiff.__main__ import main
from ubdiff.data import generate_velocity
from ubdiff.pipeline import AE_FILE, DIFF_FILE, STATE_FILE

AE = dict(dim1=4, dim2=4, dim3=8, dim4=8, latent=16, head_width=4, heads=2, mlp_hidden=16, nt=50, max_batch=8)
DIFF = dict(dim=8, dim_mults=[1, 2], groups=4, heads=2, dim_head=8, timesteps=16)
CFG = {"autoencoder": AE, "diffusion": DIFF}
DEVICES = ["cpu", pytest.param("cuda", marks=requires_gpu)]
AUTO = "cuda" if ubdiff.gpu_count() > 0 else "cpu"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # bit-exact comparisons are between runs in this process at one thread count; one thread
    # keeps the shared 2-core machine responsive
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    vel = generate_velocity("flatvel-a", 12, seed=0)
    seis = rng.normal(0, 1, (12, 5, 50, 70)).astype(np.float32)
    return vel, seis


def trained(data, device):
    vel, seis = data
    m = UBDiff(CFG, seed=3, device=device)
    m.fit_autoencoder(vel, 1, batch_size=4, progress=False)
    m.finetune(vel[:8], seis[:8], 1, batch_size=4, progress=False)
    m.fit_diffusion(vel, 2, batch_size=4, accum=1, progress=False)
    return m


def tensors(path):
    return checkpoint.load(path)[0]


# ---- device choice --------------------------------------------------------------------------
def test_both_networks_on_the_chosen_device():
    for asked, want in (("cpu", "cpu"), ("auto", AUTO)):
        m = UBDiff(CFG, device=asked)
        assert (m.device, m.autoencoder.device, m.diffusion.device) == (want, want, want), asked
        assert f"device {want}" in repr(m)
    assert UBDiff(CFG).device == AUTO   # the default is "auto", as every model's


@pytest.mark.parametrize("bad", ["gpu", "CPU", "", None, 0])
def test_bad_device_is_refused_before_anything_is_read(bad, tmp_path):
    with pytest.raises(ValueError, match=r"UBDiff: device must be 'cpu', 'cuda' or 'auto', got"):
        UBDiff(CFG, device=bad)
    with pytest.raises(ValueError, match="device must be"):   # checked before the folder is looked at
        UBDiff.load(str(tmp_path / "no-such-run"), device=bad)


@pytest.mark.skipif(ubdiff.gpu_count() > 0, reason="a GPU is visible: device='cuda' is valid here")
def test_cuda_without_a_gpu_raises_clearly(tmp_path):
    with pytest.raises(RuntimeError, match="device='cuda'"):
        UBDiff(CFG, device="cuda")
    UBDiff(CFG, device="cpu").save(str(tmp_path / "run"))
    with pytest.raises(RuntimeError, match="device='cuda'"):
        UBDiff.load(str(tmp_path / "run"), device="cuda")


# ---- run folders across devices -------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_run_saved_on_cpu_loads_on_device_and_saves_the_same_tensors(device, data, tmp_path):
    """A CPU run loaded on `device` holds the same bits (fingerprint) and, saved again, writes the
    same tensors and state; loaded back on the CPU it continues exactly as the original would."""
    m = trained(data, "cpu")
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    m.save(a)
    other = UBDiff.load(a, device=device)
    assert (other.device, other.autoencoder.device, other.diffusion.device) == (device,) * 3
    assert other.fingerprint() == m.fingerprint()
    other.save(b)
    for f in (AE_FILE, DIFF_FILE):
        ta, tb = tensors(os.path.join(a, f)), tensors(os.path.join(b, f))
        assert ta.keys() == tb.keys(), f
        for k in ta:
            assert np.array_equal(ta[k], tb[k]), (f, k)
    ja, jb = (json.load(open(os.path.join(p, STATE_FILE))) for p in (a, b))
    ja.pop("save_id"), jb.pop("save_id")   # random per save
    assert ja == jb
    back = UBDiff.load(b, device="cpu")
    vel = data[0]
    la = m.fit_diffusion(vel, 2, batch_size=4, accum=1, progress=False)
    lb = back.fit_diffusion(vel, 2, batch_size=4, accum=1, progress=False)
    assert la == lb and back.fingerprint() == m.fingerprint()


@requires_gpu
def test_run_trained_on_gpu_continues_on_cpu_and_back(data, tmp_path):
    """A run trained on the GPU, saved, loads on the CPU with the same bits and samples what the GPU
    samples within the CUDA sampling tolerance of tests/test_diffusion_device.py (atol 1e-4, rtol 1e-3:
    a few ulps per op, compounded over the DDIM steps and the decoder); saved on the CPU it loads on
    the GPU with the same bits again."""
    g = trained(data, "cuda")
    g.save(str(tmp_path / "g"))
    c = UBDiff.load(str(tmp_path / "g"), device="cpu")
    assert c.device == "cpu" and c.fingerprint() == g.fingerprint()
    zg = g.sample(3, seed=5, sampler="ddim", steps=4, decode=False)
    zc = c.sample(3, seed=5, sampler="ddim", steps=4, decode=False)
    assert_gpu_matches_cpu(zg, zc, atol=1e-4, rtol=1e-3, what="ddim latents")
    vg, sg = g.decode(zc)
    vc, sc = c.decode(zc)
    assert_gpu_matches_cpu(vg, vc, atol=1e-2, rtol=1e-4, what="velocity (m/s)")   # ~1e-5 of the 3000 m/s range
    assert_gpu_matches_cpu(sg, sc, atol=1e-4 * float(np.abs(sc).max()), rtol=1e-4, what="seismic")
    c.fit_diffusion(data[0], 1, batch_size=4, accum=1, progress=False)
    c.save(str(tmp_path / "c"))
    g2 = UBDiff.load(str(tmp_path / "c"), device="cuda")
    assert g2.device == "cuda" and g2.fingerprint() == c.fingerprint()


# ---- the command line -----------------------------------------------------------------------
def test_cli_device_flag(tmp_path, capsys):
    from ubdiff.data import make_dataset
    rng = np.random.default_rng(0)
    make_dataset("flatvel-a", 8, 4, str(tmp_path / "data"), nt=100, progress=False, preview=False,
                 simulate=lambda v, freq, nt, dt: rng.normal(0, 1, (len(v), 5, nt, 70)).astype(np.float32))
    d, run = str(tmp_path / "data"), str(tmp_path / "run")
    base = ["--data", d, "--run", run, "--quiet", "--threads", "1"]
    assert main(["train-autoencoder", *base, "--config", json.dumps(CFG), "--epochs", "1", "--batch-size", "4",
                 "--device", "cpu"]) == 0
    assert main(["train-diffusion", *base, "--steps", "1", "--batch-size", "4", "--device", "cpu"]) == 0
    assert "device cpu" in capsys.readouterr().out   # the continued run says where it runs
    if ubdiff.gpu_count() == 0:
        for cmd in (["finetune", *base, "--epochs", "1"], ["generate", "--run", run, "--n", "2", "--out",
                                                           str(tmp_path / "gen")]):
            with pytest.raises(SystemExit, match="--device cuda: (no CUDA GPU is visible|this ubdiff was built)"):
                main([*cmd, "--device", "cuda"])
        with pytest.raises(SystemExit, match="--device cuda"):
            main(["evaluate", "--generated", d, "--real", d, "--out", str(tmp_path / "rep"), "--device", "cuda"])
        assert not os.path.exists(tmp_path / "gen") and not os.path.exists(tmp_path / "rep")
    with pytest.raises(SystemExit):   # argparse: not one of the choices
        main(["generate", "--run", run, "--n", "2", "--out", str(tmp_path / "gen"), "--device", "gpu"])


# ---- evaluation -----------------------------------------------------------------------------
def test_feature_extraction_on_the_cpu_is_the_reference_network_on_the_cpu():
    from ubdiff.metrics import extract_features
    from ubdiff.metrics.featnet import load_reference
    v = generate_velocity("flatvel-a", 4, seed=1)
    got = extract_features(v, modality="velocity", batch_size=2, device="cpu")
    net = load_reference("velocity", device="cpu")
    assert net.device == "cpu"
    from ubdiff.metrics.generative import normalize
    want = np.concatenate([net.features(normalize(v[i:i + 2], "velocity", False)) for i in (0, 2)])
    assert np.array_equal(got, want)
    with pytest.raises(ValueError, match="device must be"):
        extract_features(v, modality="velocity", device="gpu")


def test_inversion_usefulness_trains_on_the_device_and_records_it():
    from ubdiff.metrics.usefulness import inversion_usefulness
    from ubdiff.metrics._norm import normalize_velocity
    v = normalize_velocity(generate_velocity("flatvel-a", 6, seed=2))
    s = np.repeat(v[:, :, :50, :], 5, axis=1).astype(np.float32)   # (6, 5, 50, 70): any stand-in will do
    cfg = {"base": "small", "dims": (4, 8, 8, 16, 16), "nt": 50}
    kw = dict(config=cfg, epochs=1, batch_size=2, normalized=True, progress=False)
    r = inversion_usefulness((s, v), (s[:2], v[:2]), device="cpu", **kw)
    assert r["protocol"]["device"] == "cpu"
    with pytest.raises(ValueError, match="inversion_usefulness: device must be"):
        inversion_usefulness((s, v), (s[:2], v[:2]), device="gpu", **kw)


def test_device_reaches_every_network(monkeypatch, tmp_path):
    """The device string is handed to each network UBDiff creates or loads (auto resolved once, by the
    autoencoder), and to the InversionNet the Table-3 protocol builds; seen through spies, since on a
    machine without a GPU every choice ends on the CPU."""
    import ubdiff.pipeline as P
    from ubdiff.models import InversionNet
    seen = []

    def spy(cls, name):   # records the device keyword of each constructor / load call
        orig = getattr(cls, name)
        if name == "__init__":
            def f(self, *a, **kw):
                seen.append((cls.__name__, kw.get("device")))
                orig(self, *a, **kw)
        else:
            def f(c, *a, **kw):
                seen.append((f"{cls.__name__}.{name}", kw.get("device")))
                return orig.__func__(c, *a, **kw)
            f = classmethod(f)
        monkeypatch.setattr(cls, name, f)
    for cls in (P.CoLatentAutoencoder, P.LatentDiffusion):
        spy(cls, "__init__")
        spy(cls, "load")
    m = UBDiff(CFG, device="cpu")
    assert seen == [("CoLatentAutoencoder", "cpu"), ("LatentDiffusion", "cpu")]
    m.save(str(tmp_path / "r"))
    seen.clear()
    UBDiff.load(str(tmp_path / "r"), device="auto")
    assert seen[0] == ("CoLatentAutoencoder.load", "auto") and ("LatentDiffusion.load", AUTO) in seen
    seen.clear()
    spy(InversionNet, "__init__")
    test_inversion_usefulness_trains_on_the_device_and_records_it()
    assert seen and all(s == ("InversionNet", "cpu") for s in seen if s[0] == "InversionNet")


@pytest.mark.parametrize("device", DEVICES)
def test_authors_state_dicts_load_on_the_device(device, data):
    """from_official_state_dict(device=) puts the authors' tensors on `device` unchanged."""
    m = trained(data, "cpu")
    ae_state, diff_state = m.official_state_dict()
    new = UBDiff.from_official_state_dict(ae_state, diff_state, config=CFG, constants=m.constants, device=device)
    assert (new.device, new.autoencoder.device, new.diffusion.device) == (device,) * 3
    for kind in ("param", "buf"):
        assert np.array_equal(new.autoencoder.get_tensor(kind=kind), m.autoencoder.get_tensor(kind=kind)), kind
    assert np.array_equal(new.diffusion.get_tensor(kind="param"), m.diffusion.get_tensor(kind="param"))
