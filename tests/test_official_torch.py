"""Real .pth files through torch.save / torch.load (``-m torch``; skipped without PyTorch).

The authors' dicts (tests/official_ref.py) are saved the way their code saves
them -- tensors, shared storages where their modules share tensors,
argparse.Namespace args -- and read back through PyTorch and through ubdiff's
own reader; ubdiff's exported .pth files are loaded with torch.
"""
import os

import numpy as np
import pytest

import ubdiff
from ubdiff import official
from ubdiff.models.inversionnet import InversionNet
from ubdiff.official import pth

import official_ref as ref
from test_official import CFG, INV, model, same

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="PyTorch is not installed (these tests read and write real .pth files)")


@pytest.fixture(autouse=True)
def one_thread():
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


def to_torch(obj, memo=None):
    """NumPy -> tensors; one array object -> one tensor, so a tensor registered under two
    names (unet. / diffusion.model., module_list aliases) shares its storage as in their files."""
    memo = {} if memo is None else memo
    if isinstance(obj, (np.ndarray, np.generic)):
        if id(obj) not in memo:
            memo[id(obj)] = (obj, torch.from_numpy(np.array(obj)))
        return memo[id(obj)][1]
    if isinstance(obj, dict):
        return {k: to_torch(v, memo) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_torch(v, memo) for v in obj)
    return obj


def both_readers(path):
    """torch.load (weights_only, Namespace allowed) and ubdiff's reader give the same object."""
    a, b = pth.read_pth(path, use_torch=True), pth.read_pth(path, use_torch=False)
    assert_same_tree(a, b)
    return a, b


def assert_same_tree(a, b, where="root"):
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        assert np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_same_tree(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_committed_fixture_both_readers_and_regenerated(tmp_path):
    fixture = os.path.join(os.path.dirname(__file__), "data", "torch_pickle_fixture.pth")
    a, _ = both_readers(fixture)
    import make_pth_fixture
    fresh = make_pth_fixture.main(str(tmp_path / "fresh.pth"))
    b, _ = both_readers(fresh)
    assert_same_tree({k: v for k, v in a.items() if k != "args"}, {k: v for k, v in b.items() if k != "args"})
    assert vars(a["args"]) == vars(b["args"])


@pytest.mark.parametrize("layout", ["trainer1d", "ema_state", "ub_diff_data_parallel"])
def test_their_diffusion_files(layout, tmp_path):
    m = model()
    obj = {"trainer1d": ref.trainer1d(m, 150),
           "ema_state": ref.ema(ref.ub_diff(m), ref.ub_diff(m, "ema"), 150),
           "ub_diff_data_parallel": ref.with_prefix(ref.ub_diff(m))}[layout]
    path = str(tmp_path / "model-5.pt")
    torch.save(to_torch(obj), path)
    if layout == "trainer1d":   # in the file unet.* and diffusion.model.* are one storage, as in theirs
        t = torch.load(path, weights_only=True)["model"]
        assert t["unet.init_conv.weight"].untyped_storage().data_ptr() == \
            t["diffusion.model.init_conv.weight"].untyped_storage().data_ptr()
    a, b = both_readers(path)
    for src in (path, b):
        got = official.load(src, config=CFG)
        if layout == "ub_diff_data_parallel":
            assert np.array_equal(got.diffusion.flat("ema"), m.diffusion.flat("param"))
        else:
            assert same(got, m) and got.diffusion.step == 150


@pytest.mark.parametrize("script", ["train_EncDec", "fine_tune_Dec_S", "data_parallel"])
def test_their_autoencoder_files_need_no_trust(script, tmp_path):
    m, other = model(0), model(1)
    sd = ref.vsnet(other.autoencoder)
    ck = {"train_EncDec": ref.train_checkpoint(sd),
          "fine_tune_Dec_S": ref.train_checkpoint(sd, epoch=9, resume="checkpoints/check_point.pth"),
          "data_parallel": ref.train_checkpoint(ref.with_prefix(sd))}[script]
    ae_path, diff_path = str(tmp_path / "ft_check_point.pth"), str(tmp_path / "model-5.pt")
    torch.save(to_torch(ck), ae_path)
    torch.save(to_torch(ref.trainer1d(m, 150)), diff_path)
    with pytest.raises(Exception, match="Namespace"):   # what a plain weights_only load says about their args
        torch.load(ae_path, weights_only=True)
    both_readers(ae_path)
    got = official.load(diff_path, ae_path, config=CFG)
    assert np.array_equal(got.autoencoder.flat("param"), other.autoencoder.flat("param"))
    assert np.array_equal(got.diffusion.flat("ema"), m.diffusion.flat("ema"))
    assert got.constants["data_min"] is not None   # from args.dataset


@pytest.mark.parametrize("legacy", [False, True])
def test_openfwi_inversionnet_file(legacy, tmp_path):
    net = InversionNet(INV, seed=2)
    sd = ref.inversionnet(net)
    ck = ref.train_checkpoint(ref.legacy_inversionnet(sd) if legacy else sd, sample_temporal=4)
    path = str(tmp_path / "checkpoint.pth")
    torch.save(to_torch(ck), path)
    both_readers(path)
    got = official.load_inversionnet(path)
    assert all(np.array_equal(got.state_dict()[k], v) for k, v in net.state_dict().items())
    out = str(tmp_path / "openfwi.pth")
    official.save_inversionnet(got, out)
    t = torch.load(out, weights_only=True)
    assert sorted(t) == ["epoch", "model", "step"] and set(t["model"]) == set(sd)
    assert t["model"]["convblock1.layers.1.num_batches_tracked"].dtype == torch.int64


def test_exported_pth_files_load_in_torch(tmp_path):
    m = model()
    vs, diff = str(tmp_path / "vsnet.pth"), str(tmp_path / "model-1.pt")
    official.export_files(m, autoencoder=vs, diffusion=diff)
    ae = torch.load(vs, weights_only=True)
    assert list(ae) == ["model"] and set(ae["model"]) == set(ref.vsnet(m.autoencoder))
    enc = ae["model"]
    assert enc["encoder.module_list1.0.layers.0.weight"].untyped_storage().data_ptr() == \
        enc["encoder.convBlock1_1.layers.0.weight"].untyped_storage().data_ptr()
    # one of their ConvBlocks (Conv2d + BatchNorm2d + ReLU) loads its tensors strictly
    w = enc["encoder.convBlock1_2.layers.0.weight"]
    block = torch.nn.Sequential(torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=1),
                                torch.nn.BatchNorm2d(w.shape[0]), torch.nn.ReLU())
    pre = "encoder.convBlock1_2.layers."
    block.load_state_dict({k[len(pre):]: v for k, v in enc.items() if k.startswith(pre)}, strict=True)
    assert block[1].num_batches_tracked.item() == int(m.autoencoder.named_buffers()[
        "encoder.convBlock1_2.layers.1.num_batches_tracked"][0])
    ck = torch.load(diff, weights_only=True)
    assert sorted(ck) == ["ema", "model", "opt", "scaler", "step"] and ck["scaler"] is None
    assert set(ck["model"]) == set(ref.ub_diff(m))
    assert ck["ema"]["step"].tolist() == [150] and ck["ema"]["initted"].dtype == torch.float32
    # their Trainer1D.load calls opt.load_state_dict: an Adam over UB_Diff's parameters accepts it
    n = len(m.autoencoder.parameter_names()) + 2 + len(m.diffusion.spec())
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1)) for _ in range(n)], lr=1.0)
    opt.load_state_dict(ck["opt"])
    assert opt.param_groups[0]["lr"] == 8e-5 and opt.param_groups[0]["betas"] == (0.9, 0.99)
    back = official.load(diff, vs, config=CFG)
    assert same(back, m) and back.diffusion.step == 150
    assert same(official.load(diff, config=CFG), m)
