"""ubdiff.official: the authors' and OpenFWI's checkpoint layouts in and out, without PyTorch.

Their dicts are rebuilt in NumPy by tests/official_ref.py (keys and nesting as
their code writes them); flat ones also go through .safetensors files. Real
.pth bytes: tests/test_official_pth.py (and, with PyTorch, test_official_torch.py).
"""
import json

import numpy as np
import pytest

import ubdiff
from ubdiff import UBDiff, official
from ubdiff.models.inversionnet import InversionNet

import official_ref as ref

AE = dict(dim1=4, dim2=4, dim3=8, dim4=8, latent=16, head_width=4, heads=2, mlp_hidden=16, nt=50, max_batch=8)
DIFF = dict(dim=8, dim_mults=(1, 2), groups=4, heads=2, dim_head=8, timesteps=32)
CFG = {"autoencoder": AE, "diffusion": DIFF}
INV = {"base": "small", "dims": (2, 2, 4, 4, 8), "nt": 250}


@pytest.fixture(autouse=True)
def one_thread():
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


def model(seed=0, step=150):
    """A tiny UBDiff whose every tensor is distinct: BatchNorm statistics and
    counters set, EMA != weights, a step past ema-pytorch's warm-up."""
    m = UBDiff(CFG, seed=seed)
    rng = np.random.default_rng(seed)
    for n, v in m.autoencoder.named_buffers().items():
        v[...] = rng.integers(1, 50, v.shape) if n.endswith("num_batches_tracked") else rng.uniform(0.5, 2, v.shape)
    m.diffusion.flat("ema")[:] = m.diffusion.flat("param") * 0.5 + 0.01
    m.diffusion.step = step
    return m


def same(a, b):
    """Every tensor ubdiff holds is equal (parameters, statistics, U-Net weights, EMA)."""
    return (np.array_equal(a.autoencoder.flat("param"), b.autoencoder.flat("param"))
            and np.array_equal(a.autoencoder.flat("buf"), b.autoencoder.flat("buf"))
            and np.array_equal(a.diffusion.flat("param"), b.diffusion.flat("param"))
            and np.array_equal(a.diffusion.flat("ema"), b.diffusion.flat("ema")))


def save_st(path, d):
    from safetensors.numpy import save_file
    save_file({k: np.asarray(v) for k, v in d.items()}, str(path))
    return str(path)


# ---- the authors' diffusion checkpoints --------------------------------------------
def test_trainer1d_checkpoint_ema_by_default_online_on_request():
    m = model()
    ck = ref.trainer1d(m, step=150)
    got = official.load(ck, config=CFG)
    assert same(got, m) and got.diffusion.step == 150
    assert same(UBDiff.from_official(ck, config=CFG), m)
    online = official.load(ck, weights="online", config=CFG)
    assert np.array_equal(online.diffusion.flat("ema"), m.diffusion.flat("param"))   # samples with online weights
    assert np.array_equal(online.diffusion.flat("param"), m.diffusion.flat("param"))
    info = official.inspect(ck)
    assert (info.layout, info.model, info.info["step"]) == ("trainer1d", "ub_diff", 150)
    assert len(info.online) == len(ck["model"]) and set(info.ema) == set(info.online)


@pytest.mark.parametrize("step", [50, 150])
def test_trainer1d_ema_initted_flag_carried_over(step):
    # their EMA copies the weights until its first update past step 100 sets `initted`; a converted
    # run must continue that schedule, not restart the copy phase
    m = model()
    ck = ref.trainer1d(m, step=step)
    want = bool(ck["ema"]["initted"][0])
    assert want == (step > 110)
    got = official.load(ck, config=CFG)
    assert got.diffusion.ema_initted is want
    assert official.load(ck, weights="online", config=CFG).diffusion.ema_initted is False
    assert bool(official.ema_state_dict(got)["initted"][0]) is want   # and written back as it was read


def test_trainer1d_with_separate_autoencoder_file_wins_and_gives_constants():
    m, other = model(0), model(1)
    ck = ref.trainer1d(m, step=150)
    ae = ref.train_checkpoint(ref.vsnet(other.autoencoder), dataset="curvevel-a")
    got = official.load(ck, ae, config=CFG)
    assert np.array_equal(got.autoencoder.flat("param"), other.autoencoder.flat("param"))
    assert np.array_equal(got.diffusion.flat("ema"), m.diffusion.flat("ema"))
    assert got.constants["label_max"] == ubdiff.data.openfwi.info("curvevel-a").label_max
    assert got.constants["data_min"] is not None
    explicit = official.load(ck, ae, config=CFG, constants="flatvel-a")
    assert explicit.constants["data_max"] == ubdiff.data.openfwi.info("flatvel-a").data_max


@pytest.mark.parametrize("wrap", ["bare", "data_parallel", "ema_state", "safetensors_ub_diff", "safetensors_ema"])
def test_ub_diff_state_dict_layouts(wrap, tmp_path):
    m = model()
    sd, ema_sd = ref.ub_diff(m, "param"), ref.ema(ref.ub_diff(m, "param"), ref.ub_diff(m, "ema"), 150)
    src = {"bare": sd, "data_parallel": ref.with_prefix(sd), "ema_state": ema_sd,
           "safetensors_ub_diff": save_st(tmp_path / "ub_diff.safetensors", sd) if wrap.endswith("ub_diff") else None,
           "safetensors_ema": save_st(tmp_path / "ema.safetensors", ema_sd) if wrap.endswith("ema") else None}[wrap]
    got = official.load(src, config=CFG)
    if wrap in ("ema_state", "safetensors_ema"):
        assert same(got, m) and got.diffusion.step == 150
        # later ema-pytorch versions leave online_model out: the EMA weights serve as both
        newer = official.load({k: v for k, v in ema_sd.items() if not k.startswith("online_model.")}, config=CFG)
        assert np.array_equal(newer.diffusion.flat("param"), m.diffusion.flat("ema"))
    else:   # one set of weights: it goes to both copies
        assert np.array_equal(got.diffusion.flat("ema"), m.diffusion.flat("param"))
        assert np.array_equal(got.autoencoder.flat("buf"), m.autoencoder.flat("buf"))


def test_lucidrains_trainer1d_and_bare_diffusion_need_the_autoencoder():
    """lucidrains' own Trainer1D wraps a bare GaussianDiffusion1D; a bare Unet1D has no schedule."""
    m = model()
    gd = {k[len("diffusion."):]: v for k, v in ref.ub_diff(m).items() if k.startswith("diffusion.")}
    gd_ema = {k[len("diffusion."):]: v for k, v in ref.ub_diff(m, "ema").items() if k.startswith("diffusion.")}
    ck = {"step": 150, "model": gd, "opt": ref.adam_state(len(gd)), "ema": ref.ema(gd, gd_ema, 150), "scaler": None}
    vs = ref.vsnet(m.autoencoder)
    assert same(official.load(ck, vs, config=CFG), m)
    with pytest.raises(ValueError, match="no autoencoder"):
        official.load(ck, config=CFG)
    unet = m.diffusion.state_dict("param")
    got = official.load(ref.with_prefix(unet), ref.with_prefix(vs), config=CFG)
    assert np.array_equal(got.diffusion.flat("ema"), m.diffusion.flat("param"))


def test_autoencoder_checkpoints_of_both_training_steps(tmp_path):
    """train_EncDec.py (check_point.pth) and fine_tune_Dec_S.py (ft_check_point.pth) save the same dict."""
    m = model()
    sd = ref.vsnet(m.autoencoder)
    for ck in (ref.train_checkpoint(sd), ref.train_checkpoint(sd, epoch=9, resume="check_point.pth"),
               ref.train_checkpoint(ref.with_prefix(sd)), sd, save_st(tmp_path / "vsnet.safetensors", sd)):
        got = official.unwrap_autoencoder(official.read(ck))
        assert set(got) == set(sd)
        info = official.inspect(ck)
        assert info.model == "vsnet"
    info = official.inspect(ref.train_checkpoint(sd, epoch=9))
    assert info.layout == "train" and info.info["epoch"] == 9 and info.info["args"]["dataset"] == "flatvel-a"


# ---- OpenFWI InversionNet -----------------------------------------------------------
@pytest.mark.parametrize("wrap", ["train", "bare", "data_parallel", "legacy", "safetensors"])
def test_openfwi_inversionnet(wrap, tmp_path):
    net = InversionNet(INV, seed=3)
    for v in net.buffers().values():
        v[...] = np.random.default_rng(0).uniform(0.5, 2, v.shape)
    sd = ref.inversionnet(net)
    src = {"train": ref.train_checkpoint(sd, sample_temporal=4), "bare": sd, "data_parallel": ref.with_prefix(sd),
           "legacy": ref.train_checkpoint(ref.legacy_inversionnet(sd), sample_temporal=4),
           "safetensors": save_st(tmp_path / "inv.safetensors", sd) if wrap == "safetensors" else None}[wrap]
    # the widths come from the tensors, nt = 1000 / args.sample_temporal; without args give nt
    got = official.load_inversionnet(src, config=None if wrap in ("train", "legacy") else dict(INV))
    assert got.config["dims"] == INV["dims"] and got.config["nt"] == 250
    assert all(np.array_equal(got.state_dict()[k], v) for k, v in net.state_dict().items())


def test_inversionnet_export_round_trip(tmp_path):
    net = InversionNet(INV, seed=4)
    path = str(tmp_path / "openfwi.safetensors")
    official.save_inversionnet(net, path)
    from safetensors.numpy import load_file
    keys = set(load_file(path))
    assert keys == set(ref.inversionnet(net))   # what OpenFWI's InversionNet.load_state_dict(strict=True) wants
    back = official.load_inversionnet(path, config=INV)
    assert all(np.array_equal(back.state_dict()[k], v) for k, v in net.state_dict().items())


# ---- writing their layouts -----------------------------------------------------------
def test_export_keys_are_what_their_modules_hold():
    m = model()
    vs = official.vsnet_state_dict(m)
    want = ref.vsnet(m.autoencoder)
    assert set(vs) == set(want)
    assert all(np.shape(vs[k]) == np.shape(want[k]) and np.asarray(vs[k]).dtype == np.asarray(want[k]).dtype
               for k in want)
    assert sum(k.startswith("encoder.module_list") for k in vs) == 15 * 7   # 4 params + 3 BatchNorm buffers
    assert not any(k.startswith("decoder_v.blocks.") for k in vs)         # a plain list in Decoder_V
    assert vs["encoder.module_list2.4.layers.0.weight"] is vs["encoder.convBlock8.layers.0.weight"]
    ub = official.ub_diff_state_dict(m, "ema")
    assert set(ub) == set(ref.ub_diff(m, "ema"))
    assert ub["unet.init_conv.weight"] is ub["diffusion.model.init_conv.weight"]
    theirs = ref.cosine_schedule_buffers(DIFF["timesteps"])
    assert all(np.allclose(ub["diffusion." + k], v, rtol=1e-6, atol=1e-8) for k, v in theirs.items())
    ema = official.ema_state_dict(m)
    assert set(ema) == set(ref.ema(ub, ub, 150))
    assert ema["initted"].dtype == np.float32 and ema["step"].dtype == np.int64 and ema["step"][0] == 150
    ck = official.trainer_checkpoint(m)
    assert sorted(ck) == sorted(["step", "model", "opt", "ema", "scaler"]) and ck["scaler"] is None
    n_params = len(m.autoencoder.parameter_names()) + 2 + len(m.diffusion.spec())
    assert ck["opt"]["param_groups"][0]["params"] == list(range(n_params))


@pytest.mark.parametrize("early", [False, True])
def test_ema_initted_follows_ema_pytorch(early):
    m = model(step=110 if early else 111)
    assert official.ema_state_dict(m)["initted"][0] == (0.0 if early else 1.0)


def test_round_trip_through_their_layouts(tmp_path):
    m = model()
    # objects
    back = official.load(official.trainer_checkpoint(m), config=CFG)
    assert same(back, m) and back.diffusion.step == m.diffusion.step
    ae, diff = official.export(m)
    back = UBDiff.from_official_state_dict(ae, diff, CFG, ema_state=dict(diff, **{
        "model." + k: v for k, v in m.diffusion.state_dict("ema").items()}))
    assert same(back, m)
    # files
    vs, ema = str(tmp_path / "vsnet.safetensors"), str(tmp_path / "ub_diff_ema.safetensors")
    assert official.export_files(m, autoencoder=vs, diffusion=ema) == [vs, ema]
    back = official.load(ema, config=CFG)
    assert same(back, m) and back.diffusion.step == m.diffusion.step
    back = official.load(ema, vs, config=CFG, constants="flatvel-a")
    assert same(back, m)
    m.set_constants("flatvel-a")
    a = m.sample(2, seed=1, sampler="ddim", steps=3)
    b = back.sample(2, seed=1, sampler="ddim", steps=3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_export_pth_without_torch_says_so(tmp_path):
    pytest.importorskip("ubdiff")
    try:
        import torch  # noqa: F401
        pytest.skip("PyTorch is installed")
    except ImportError:
        pass
    with pytest.raises(ImportError, match="needs PyTorch"):
        official.export_files(model(), autoencoder=str(tmp_path / "vsnet.pth"))


# ---- errors ---------------------------------------------------------------------------
def test_errors_name_the_problem(tmp_path):
    m = model()
    sd = ref.ub_diff(m)
    with pytest.raises(ValueError, match="weights must be one of"):
        official.load(sd, config=CFG, weights="best")
    bad = dict(sd, **{"unet.init_conv.bias": sd["unet.init_conv.bias"] + 1})
    with pytest.raises(ValueError, match="unet.init_conv.bias and diffusion.model.init_conv.bias differ"):
        official.load(bad, config=CFG)
    with pytest.raises(KeyError, match="unexpected keys in a UB_Diff"):
        official.load(dict(sd, **{"leaky_relu.weight": np.zeros(1, np.float32)}), config=CFG)
    with pytest.raises(ValueError, match="not a diffusion"):
        official.load(ref.vsnet(m.autoencoder), config=CFG)
    with pytest.raises(ValueError, match="not OpenFWI's InversionNet"):
        official.load_inversionnet(sd)
    with pytest.raises(ValueError, match="unknown model"):
        official.load({"foo.weight": np.zeros(2, np.float32)}, config=CFG)
    with pytest.raises(ValueError, match="not tensors"):
        official.load({"model": {"encoder.x": "text"}, "epoch": 1}, config=CFG)
    with pytest.raises(ValueError, match="neither a state_dict"):
        official.load({"weights": 3}, config=CFG)
    with pytest.raises(ValueError, match="different keys"):
        ck = ref.trainer1d(m, 150)
        ck["ema"] = {k: v for k, v in ck["ema"].items() if k != "ema_model.fc_v.bias"}
        official.load(ck, config=CFG)
    with pytest.raises(ValueError, match="cosine"):
        linear = dict(sd, **{"diffusion.betas": np.linspace(1e-4, 0.02, 32).astype(np.float32)})
        official.load(linear, config=CFG)
    with pytest.raises(KeyError, match="missing"):   # strict: a tensor of theirs is gone
        official.load({k: v for k, v in sd.items() if not k.startswith("fc_s.")}, config=CFG)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        official.load(str(tmp_path / "model-9.pt"), config=CFG)
    with pytest.raises(ValueError, match="extension"):
        official.export_files(m, autoencoder=str(tmp_path / "vsnet.bin"))


# ---- command line ---------------------------------------------------------------------
def test_cli_convert_and_export_official(tmp_path, capsys):
    from ubdiff.__main__ import main
    for cmd in ("convert-official", "export-official"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0 and "usage:" in capsys.readouterr().out
    m = model()
    ema_file = save_st(tmp_path / "ema.safetensors", ref.ema(ref.ub_diff(m), ref.ub_diff(m, "ema"), 150))
    run = str(tmp_path / "run")
    assert main(["convert-official", "--diffusion", ema_file, "--out", run, "--config", json.dumps(CFG),
                 "--constants", "flatvel-a"]) == 0
    assert "EMA" in capsys.readouterr().out
    assert same(UBDiff.load(run), m)
    run2 = str(tmp_path / "run_online")
    assert main(["convert-official", "--diffusion", ema_file, "--out", run2, "--config", json.dumps(CFG),
                 "--weights", "online"]) == 0
    assert np.array_equal(UBDiff.load(run2).diffusion.flat("ema"), m.diffusion.flat("param"))
    vs, diff = str(tmp_path / "out" / "vsnet.safetensors"), str(tmp_path / "out" / "model.safetensors")
    assert main(["export-official", "--run", run, "--autoencoder", vs, "--diffusion", diff]) == 0
    back = official.load(diff, vs, config=CFG)
    assert same(back, m)
    inv = InversionNet(INV, seed=1)
    inv_file = save_st(tmp_path / "inv.safetensors", ref.inversionnet(inv))
    out = str(tmp_path / "inv_ubdiff.safetensors")
    assert main(["convert-official", "--inversionnet", inv_file, "--out", out, "--config", json.dumps(INV)]) == 0
    assert all(np.array_equal(InversionNet.load(out).state_dict()[k], v) for k, v in inv.state_dict().items())
    theirs = str(tmp_path / "openfwi.safetensors")
    assert main(["export-official", "--inversionnet", out, "--out", theirs]) == 0
    from safetensors.numpy import load_file
    assert set(load_file(theirs)) == set(ref.inversionnet(inv))
    with pytest.raises(SystemExit, match="--diffusion or --inversionnet"):
        main(["convert-official", "--out", run])
    with pytest.raises(SystemExit, match="no such checkpoint"):
        main(["convert-official", "--diffusion", str(tmp_path / "none.pt"), "--out", run])
