"""The pipeline sub-commands of ``python -m ubdiff`` (tiny config, seconds)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ubdiff.__main__ import main

COMMANDS = ("train-autoencoder", "finetune", "train-diffusion", "generate", "convert-official")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = {"autoencoder": dict(dim1=4, dim2=4, dim3=8, dim4=8, latent=16, head_width=4, heads=2, mlp_hidden=16, nt=50,
                           max_batch=8),
       "diffusion": dict(dim=8, dim_mults=[1, 2], groups=4, heads=2, dim_head=8, timesteps=16)}


@pytest.mark.parametrize("cmd", COMMANDS + ("demo",))
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_commands_end_to_end(tmp_path, capsys):
    from ubdiff.data import make_dataset
    rng = np.random.default_rng(0)
    make_dataset("flatvel-a", 24, 8, str(tmp_path / "data"), nt=100, progress=False, preview=False,
                 simulate=lambda v, freq, nt, dt: rng.normal(0, 1, (len(v), 5, nt, 70)).astype(np.float32))
    d, run = str(tmp_path / "data"), str(tmp_path / "run")
    base = ["--data", d, "--run", run, "--quiet", "--threads", "1"]
    assert main(["train-autoencoder", *base, "--config", json.dumps(CFG), "--epochs", "2"]) == 0
    assert main(["finetune", *base, "--epochs", "1", "--n-paired", "6"]) == 0
    assert main(["finetune", *base, "--epochs", "1", "--no-freeze"]) == 0
    assert main(["train-diffusion", *base, "--steps", "3", "--batch-size", "4", "--save-every", "2"]) == 0
    out = str(tmp_path / "gen")
    assert main(["generate", "--run", run, "--n", "3", "--out", out, "--sampler", "ddim", "--steps", "2",
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "epoch 2: loss" in text and "step 2, F = 0 on 8 pairs" in text and "step 3:" in text
    assert sorted(os.listdir(out)) == ["data1.npy", "generated_pairs.png", "model1.npy", "ubdiff_dataset.json"]
    assert np.load(os.path.join(out, "data1.npy")).shape == (3, 5, 50, 70)
    from ubdiff import UBDiff
    m = UBDiff.load(run)
    assert m.state["step1"]["epoch"] == 2 and m.state["step2"]["epoch"] == 2 and m.diffusion.step == 3
    with pytest.raises(SystemExit, match="omit --config"):
        main(["train-autoencoder", *base, "--config", "small", "--epochs", "1"])
    with pytest.raises(SystemExit, match="no UBDiff run"):
        main(["finetune", "--data", d, "--run", str(tmp_path / "none"), "--epochs", "1"])


def test_convert_official_reads_pth_without_torch(tmp_path):
    """.pth files need no PyTorch: a real torch.save file (tests/data, a small training-script dict
    around a Conv+BatchNorm state_dict) is read and refused only for its model; a missing file is named."""
    pytest.importorskip("ubdiff")
    fixture = os.path.join(ROOT, "tests", "data", "torch_pickle_fixture.pth")
    run = lambda *a: subprocess.run([sys.executable, "-m", "ubdiff", "convert-official", *a, "--out", str(tmp_path)],
                                    capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    r = run("--diffusion", fixture)
    assert r.returncode != 0 and "unknown model" in r.stderr and "needs PyTorch" not in r.stderr
    r = run("--diffusion", "b.pth")
    assert r.returncode != 0 and "b.pth: no such checkpoint file" in r.stderr


def test_demo_smoke(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--scale", "0.1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "physics consistency" in out and (tmp_path / "generated_pairs.png").exists()
    assert sorted(os.listdir(tmp_path / "generated")) == ["data1.npy", "model1.npy", "ubdiff_dataset.json"]
