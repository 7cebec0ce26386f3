"""`python -m ubdiff compare` on tiny sizes (seconds): the whole command -- data,
every available method trained, sampled and evaluated, Tables 2-5 as Markdown and
JSON, the figures -- then a rerun that resumes instead of retraining, and the
pieces (registry, tables) on their own. The numbers of a tiny run mean nothing;
tests/comparisons/ checks the paper's orderings at small scale (slow)."""
import json
import os

import numpy as np
import pytest

from ubdiff.compare import registry, scales, tables
from ubdiff.compare.registry import Method


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from ubdiff.__main__ import main
    out = str(tmp_path_factory.mktemp("cmp") / "tiny")
    assert main(["compare", "--scale", "tiny", "--out", out, "--quiet"]) == 0
    with open(os.path.join(out, "tables.json")) as f:
        return out, json.load(f)


def test_command_writes_tables_figures_and_skip_lines(tiny):
    out, res = tiny
    for f in ("tables.md", "tables.json", "compare.json", "figures/fig5_samples.png", "figures/fig6_ubdiff.png",
              "figures/fig6_wo_opt.png", "figures/fig6_ubdiff_seismic_first.png", "figures/fig6_mt_diffusion.png"):
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    t = res["tables"]
    rows = {k: [r["method"] for r in v["rows"]] for k, v in t.items()}
    assert rows["table2"] == ["ubdiff", "mt_diffusion", "wo_opt", "ubdiff_seismic_first", "real"]
    assert rows["table3"] == ["ubdiff", "mt_diffusion", "wo_opt", "ubdiff_seismic_first", "real"]
    assert rows["table4"] == ["ubdiff", "ddpm", "sd_velocity", "real"]
    assert rows["table5"] == ["ubdiff", "sd_seismic", "ubdiff_seismic_first", "real"]
    assert rows["physics"] == ["ubdiff", "mt_diffusion", "wo_opt", "ubdiff_seismic_first"]
    # every method of the paper is in this build: no skip lines
    skipped = {k: {s["method"]: s["reason"] for s in v["skipped"]} for k, v in t.items()}
    assert not any(skipped.values()), skipped
    md = open(os.path.join(out, "tables.md")).read()
    assert "| DDPM |" in md
    assert "| UB-Diff (seismic first) |" in md
    for r in t["table2"]["rows"] + t["table3"]["rows"]:
        assert all(v is not None and np.isfinite(v) for k, v in r.items() if k not in ("method", "title", "samples"))
    assert t["table2"]["rows"][0]["samples"] == scales.SCALES["tiny"]["samples"]
    assert t["table5"]["rows"][1]["seismic FID"] is not None and np.isfinite(t["table5"]["rows"][1]["seismic FID"])


def test_seismic_only_samples(tiny):
    """SD (seismic) writes records only (data*.npy, no maps) with their own metadata; they read back
    a batch at a time, in physical units, as many as asked for."""
    from ubdiff.compare import samples
    out, res = tiny
    folder = os.path.join(out, "methods", "sd_seismic", "samples")
    names = sorted(os.listdir(folder))
    assert names == ["data1.npy", samples.SEISMIC_META], names
    s = samples.open_samples(folder)
    n = scales.SCALES["tiny"]["samples"]
    assert s["velocity"] is None and len(s["pairs"]) == n and samples.complete(folder, n, s["meta"]["seed"])
    rec = s["pairs"].seismic(np.arange(n))
    assert rec.shape[:2] == (n, 5) and np.isfinite(rec).all() and np.abs(rec).max() > 1e-6
    assert np.array_equal(rec[2:3], s["pairs"].seismic([2]))

def test_sd_velocity_is_ubdiffs_velocity_branch(tiny):
    """At F = 1, SD (velocity) is UB-Diff's step 1 + diffusion: it reuses UB-Diff's run and draws."""
    from ubdiff.data import open_npy
    out, res = tiny
    a = open_npy(os.path.join(out, "methods", "ubdiff", "samples", "model1.npy"))
    b = open_npy(os.path.join(out, "methods", "sd_velocity", "samples", "model1.npy"))
    assert np.array_equal(a, b)
    assert res["methods"]["sd_velocity"]["velocity"]["fid"] == res["methods"]["ubdiff"]["velocity"]["fid"]
    assert not os.path.exists(os.path.join(out, "methods", "sd_velocity", "run"))


def test_rerun_resumes_without_retraining(tiny, capsys):
    from ubdiff import compare
    out, res = tiny
    stamp = {m: os.path.getmtime(os.path.join(out, "methods", m, "trained.json"))
             for m in ("ubdiff", "wo_opt", "ubdiff_seismic_first", "mt_diffusion", "sd_seismic", "ddpm")}
    r = compare.run(out, scale="tiny", progress=False, make_figures=False)
    text = capsys.readouterr().out
    assert "): training" not in text and ": generating" not in text and ": evaluating" not in text
    assert stamp == {m: os.path.getmtime(os.path.join(out, "methods", m, "trained.json")) for m in stamp}
    assert r["tables"]["table3"]["rows"] == res["tables"]["table3"]["rows"]


def test_rerun_with_other_settings_is_refused(tiny):
    from ubdiff import compare
    out, _ = tiny
    with pytest.raises(ValueError, match="other settings.*paired"):
        compare.run(out, scale="tiny", paired=5, progress=False)


def test_a_killed_stage_resumes_from_its_checkpoint(tmp_path):
    """A method whose training stopped mid-way (no trained.json, a run folder saved after its
    first epochs) continues from that run: the finished stages are not repeated."""
    from ubdiff import compare
    from ubdiff.pipeline import UBDiff
    out = str(tmp_path / "c")
    over = {"autoencoder": {"step1_epochs": 2}}
    compare.run(out, scale="tiny", methods="ubdiff", progress=False, make_figures=False, plan_overrides=over)
    folder = os.path.join(out, "methods", "ubdiff")
    full = UBDiff.load(os.path.join(folder, "run"))
    # simulate a kill after step 1: a fresh run trained step 1 only, no trained.json, no samples
    import shutil
    shutil.rmtree(folder)
    part = UBDiff("small", seed=0, max_batch=4)
    from ubdiff.compare import split as split_mod
    data = split_mod.open_split(os.path.join(out, "data"), "flatvel-a", scales.plan("tiny", overrides=over))
    part.set_constants(dict(data.constants))
    part.fit_autoencoder(data.train_velocity, 2, batch_size=4, lr=5e-4, lr_decay=0.9, progress=False)
    part.save(os.path.join(folder, "run"))
    compare.run(out, scale="tiny", methods="ubdiff", progress=False, make_figures=False, plan_overrides=over)
    again = UBDiff.load(os.path.join(folder, "run"))
    assert again.history["step1"] == part.history["step1"]   # step 1 not rerun
    assert np.array_equal(again.autoencoder.flat(), full.autoencoder.flat())
    assert again.diffusion.step == full.diffusion.step


# ---- the pieces ---------------------------------------------------------------------


def test_registry_resolves_and_explains(monkeypatch):
    assert registry.resolve(None)[:4] == ["ubdiff", "wo_opt", "ubdiff_seismic_first", "sd_velocity"]
    assert registry.resolve("sd_velocity, ubdiff") == ["ubdiff", "sd_velocity"]   # a reused method first
    with pytest.raises(ValueError, match="unknown method.*nope.*known: ubdiff"):
        registry.resolve("ubdiff,nope")
    # a planned method (every paper method is in this build now): a reason, not an import
    monkeypatch.setitem(registry.PLANNED, "future", ("Future", "not implemented yet (test)"))
    m, why = registry.status("future")
    assert m is None and "not implemented" in why
    with pytest.raises(LookupError, match="Future"):
        registry.get("future")
    for name in registry.REGISTRY:
        m, why = registry.status(name)
        assert m.name == name and why is None, (name, why)
    with pytest.raises(ValueError, match="paired method produces both"):
        Method(name="x", title="x", produces=("velocity",), paired=True, train=None, generate=None, description="")


def test_plans_are_checked():
    p = scales.plan("paper", family="curvevel-a")
    assert p["autoencoder"]["lr"] == 5e-4 and p["samples"] == 10000 and p["diffusion"]["steps"] == 150000
    assert scales.plan("small", paired=32)["paired"] == 32
    with pytest.raises(ValueError, match="cannot exceed"):
        scales.plan("small", paired=10_000)
    with pytest.raises(ValueError, match="unknown key 'epochs'"):
        scales.plan("small", overrides={"epochs": 3})
    with pytest.raises(ValueError, match="scale must be"):
        scales.plan("huge")


def test_tables_from_results():
    ev = {"title": "UB-Diff", "produces": ["velocity", "seismic"], "paired": True, "samples": 8,
          "velocity": {"fid": 1.5, "kid_mean": 0.1}, "seismic": {"fid": 2.5, "kid_mean": 0.2},
          "inversionnet": {"mae": 0.1, "mse": 0.02, "ssim": 0.8, "n_train": 8}}
    newcomer = {"title": "New", "produces": ["seismic"], "paired": False, "samples": 8,
                "seismic": {"fid": 3.0, "kid_mean": 0.3}}
    real = {"title": "real", "velocity": {"fid": 0.5, "kid_mean": 0.0}, "seismic": {"fid": 0.7, "kid_mean": 0.0},
            "inversionnet": {"mae": 0.05, "mse": 0.01, "ssim": 0.9, "n_train": 4}}
    res = {"methods": {"ubdiff": ev, "mt_diffusion": {"title": "MT-Diffusion", "skipped": "not here"},
                       "newcomer": newcomer}, "real": real}
    t = tables.build(res)
    assert [r["method"] for r in t["table2"]["rows"]] == ["ubdiff", "real"]
    assert t["table2"]["skipped"] == [{"method": "mt_diffusion", "title": "MT-Diffusion", "reason": "not here"}]
    assert t["table2"]["rows"][0]["seismic FID"] == 2.5
    assert [r["method"] for r in t["table5"]["rows"]] == ["ubdiff", "newcomer", "real"]   # joins by what it produces
    assert [r["method"] for r in t["table4"]["rows"]] == ["ubdiff", "real"]
    assert not t["reconstruction"]["rows"]
    s = {"family": "flatvel-a", "scale": "tiny", "seed": 0, "samples": 8,
         "sizes": {"train_maps": 1, "train_pairs": 1, "test_pairs": 1, "test_maps": 1},
         "plan": {"sampling": {"sampler": "ddpm", "weights": "ema"}}}
    md = tables.markdown(t, s)
    assert "| UB-Diff | 1.50 | 2.50 | 0.1000 | 0.2000 | 8 |" in md
    assert "*MT-Diffusion* (mt_diffusion): skipped -- not here" in md
    assert "Autoencoder reconstruction" not in md   # empty tables are left out


def test_bare_pytest_of_comparisons_skips_with_how_to_run_it(tmp_path):
    """`pytest tests/comparisons` without `-m slow` or UBDIFF_COMPARE_DIR must not start the 1.5-hour run."""
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in ("UBDIFF_COMPARE_DIR", "PYTEST_ADDOPTS")}
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                        os.path.join(here, "comparisons")], cwd=str(tmp_path), env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed" not in r.stdout and "failed" not in r.stdout, r.stdout
    assert "skipped" in r.stdout and "run it with `-m slow` or set UBDIFF_COMPARE_DIR" in r.stdout, r.stdout


def test_comparisons_run_when_asked_for():
    from comparisons.conftest import comparisons_requested
    assert not comparisons_requested("", {})
    assert not comparisons_requested("cuda", {})
    assert comparisons_requested("slow", {})
    assert comparisons_requested("", {"UBDIFF_COMPARE_DIR": "/tmp/x"})
