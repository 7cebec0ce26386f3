"""Nothing is lost or mixed on any interruption: kill at every write point, full disk, file size limit.

The kill tests run tests/interrupt_driver.py (one subprocess per scenario; it forks one writer per
kill point and SIGKILLs it just before its k-th file-system change, for every k). After each kill
the folder must read as exactly the old or exactly the new content (or, for a dataset still being
made, be refused with a clear error while what partial=True reads matches an uninterrupted run),
and the next uninterrupted write must leave the new content and no temporary anywhere.
"""
import errno
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ubdiff
from ubdiff import UBDiff
from ubdiff.data import DataError, OpenFWIDataset, files, make_dataset

HERE = os.path.dirname(os.path.abspath(__file__))
AE = dict(dim1=4, dim2=4, dim3=8, dim4=8, latent=16, head_width=4, heads=2, mlp_hidden=16, nt=50, max_batch=8)
DIFF = dict(dim=8, dim_mults=(1, 2), groups=4, heads=2, dim_head=8, timesteps=32)
CFG = {"autoencoder": AE, "diffusion": DIFF}
GEN = dict(sampler="ddim", steps=2, file_size=2, progress=False)

# scenario -> outcomes a kill may leave (anything else -- a mix, a crash, another error -- fails)
ALLOWED = {"save": {"old", "new"}, "save_fresh": {"absent", "new"}, "generate": {"old", "new"},
           "make_dataset": {"absent", "refused", "new"}}
CASES = [("save", False), ("save", True), ("save_fresh", False), ("generate", False), ("generate", True),
         ("make_dataset", False)]


def _drive(scenario, work, fallback):
    cmd = [sys.executable, os.path.join(HERE, "interrupt_driver.py"), scenario, str(work)]
    if fallback:
        cmd.append("--fallback")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert res.returncode == 0 and lines, f"driver failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return lines


@pytest.mark.parametrize("scenario,fallback", CASES,
                         ids=[f"{s}{'-two-renames' if f else ''}" for s, f in CASES])
def test_kill_at_every_write_point(tmp_path, scenario, fallback):
    rows = _drive(scenario, tmp_path, fallback)
    n = rows[0]["n"]
    assert n >= 5 and [r["k"] for r in rows] == list(range(1, n + 1)), rows[:1]
    bad = [r for r in rows if r["outcome"] not in ALLOWED[scenario] or r["after"] != "clean"]
    assert not bad, "\n".join(json.dumps(r) for r in bad)
    seen = {r["outcome"] for r in rows}
    # the kills span the whole write: both the state before and the state after the commit point occur
    assert {"old", "new"} <= seen or scenario in ("save_fresh", "make_dataset"), seen
    print(f"{scenario}{' (two renames)' if fallback else ''}: {n} kill points, outcomes "
          f"{sorted((o, sum(r['outcome'] == o for r in rows)) for o in seen)}")


# ---- full disk, simulated ---------------------------------------------------------------
def fake_simulate(vel, *, freq=15.0, nt=1000, dt=1e-3):
    t = np.arange(nt, dtype=np.float32)[None, None, :, None]
    return np.broadcast_to((vel[:, :, :1, :] - 3000.0) / 100.0 * np.cos(0.3 * t), (len(vel), 5, nt, 70)).astype(
        np.float32)


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _leftovers(top):
    return [os.path.join(d, n) for d, ds, ns in os.walk(top) for n in ds + ns if files.is_temp_name(n)]


def test_make_dataset_full_disk_is_a_clean_oserror(tmp_path, monkeypatch):
    out = str(tmp_path / "ds")
    kw = dict(maps=4, paired=3, file_size=2, nt=8, preview=False, progress=False)
    monkeypatch.setattr(os, "posix_fallocate", _enospc)      # the seismic memmap's reservation fails
    with pytest.raises(OSError) as e:
        make_dataset("flatvel-a", out_dir=out, simulate=fake_simulate, **kw)
    assert e.value.errno == errno.ENOSPC
    assert sorted(os.listdir(out)) == ["model1.npy", "ubdiff_dataset.json"] and not _leftovers(out)
    with pytest.raises(DataError, match="incomplete"):
        OpenFWIDataset.from_folder(out)
    monkeypatch.undo()
    monkeypatch.setattr(np.lib.format, "write_array", _enospc)   # now the velocity files' writes fail
    with pytest.raises(OSError, match="No space"):
        make_dataset("flatvel-a", out_dir=out, simulate=fake_simulate, **kw)
    assert not _leftovers(out)
    monkeypatch.undo()                                         # space freed: the rerun finishes the dataset
    make_dataset("flatvel-a", out_dir=out, simulate=fake_simulate, **kw)
    ref = str(tmp_path / "ref")
    make_dataset("flatvel-a", out_dir=ref, simulate=fake_simulate, **kw)
    for a, b in zip(OpenFWIDataset.from_folder(out)[:], OpenFWIDataset.from_folder(ref)[:]):
        np.testing.assert_array_equal(a, b)
    assert not _leftovers(out)


@pytest.fixture(scope="module")
def runs():
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    a, b = UBDiff(CFG, seed=0), UBDiff(CFG, seed=1)
    for m in (a, b):
        m.set_constants("flatvel-a")
    yield a, b
    ubdiff.set_num_threads(old)


def test_save_and_generate_on_a_full_disk_keep_the_old_content(tmp_path, monkeypatch, runs):
    import safetensors.numpy as stn
    old, new = runs
    run, gen = str(tmp_path / "run"), str(tmp_path / "gen")
    old.save(run)
    old.generate(3, gen, seed=1, **GEN)
    before = OpenFWIDataset.from_folder(gen)[:]
    monkeypatch.setattr(stn, "save_file", _enospc)
    with pytest.raises(OSError, match="No space"):
        new.save(run)
    monkeypatch.setattr(np.lib.format, "write_array", _enospc)
    with pytest.raises(OSError, match="No space"):
        new.generate(3, gen, seed=2, **GEN)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["gen", "run"] and not _leftovers(str(tmp_path))
    back = UBDiff.load(run)
    np.testing.assert_array_equal(back.autoencoder.flat("param"), old.autoencoder.flat("param"))
    for a, b in zip(OpenFWIDataset.from_folder(gen)[:], before):
        np.testing.assert_array_equal(a, b)


# ---- a real limit: RLIMIT_FSIZE ---------------------------------------------------------
def test_file_size_limit_is_a_clean_oserror(tmp_path):
    # A real kernel refusal, no monkeypatch: under RLIMIT_FSIZE the kernel sends SIGXFSZ (which
    # CPython ignores) and fails the call with EFBIG -- the way a full disk fails it with ENOSPC.
    # Velocity files (2 maps, 39 KB) fit under the limit, a seismic file (2 x 280 KB) does not.
    code = textwrap.dedent(f"""
        import errno, os, resource, sys
        import numpy as np
        sys.path.insert(0, {HERE!r})
        from test_interrupt import fake_simulate
        from ubdiff.data import make_dataset
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
        try:
            make_dataset("flatvel-a", 4, 4, {str(tmp_path / 'ds')!r}, simulate=fake_simulate, nt=200,
                         file_size=2, preview=False, progress=False)
        except OSError as e:
            print("OSError", errno.errorcode.get(e.errno))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["OSError", "EFBIG"], res.stdout + res.stderr
    out = str(tmp_path / "ds")
    assert sorted(os.listdir(out)) == ["model1.npy", "ubdiff_dataset.json"] and not _leftovers(out)
    with pytest.raises(DataError, match="incomplete"):
        OpenFWIDataset.from_folder(out)


# ---- temporaries: stale ones go, live ones stay; user files survive a folder swap -----------
def test_stale_temporaries_are_removed_and_live_ones_kept(tmp_path):
    import fcntl
    from ubdiff.data import write_npy
    live = tmp_path / ".model1.npy.abcd1234.tmp"      # a writer in another process is filling it
    stale = tmp_path / ".model1.npy.zzzz9999.tmp"     # a killed writer's
    live.write_bytes(b"partial")
    stale.write_bytes(b"partial")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        write_npy(str(tmp_path / "model1.npy"), np.zeros((1, 1, 70, 70), np.float32))
        assert live.exists() and not stale.exists()
    finally:
        os.close(fd)
    write_npy(str(tmp_path / "model1.npy"), np.zeros((1, 1, 70, 70), np.float32))
    assert sorted(os.listdir(tmp_path)) == ["model1.npy"]


def test_save_keeps_user_files_and_drops_old_temporaries(tmp_path, runs):
    old, new = runs
    run = tmp_path / "run"
    old.save(str(run))
    (run / "notes").mkdir()
    (run / "notes" / "a.txt").write_text("user data")
    (run / ".my.new-notes").write_text("a user file that only looks like a temporary")
    os.symlink("notes/a.txt", run / "link.txt")
    (run / ".tmp-abcdefgh.safetensors").write_bytes(b"x" * 100)   # leaked by an older ubdiff
    (run / ".ubdiff.json.abcdefgh.tmp").write_text("{")
    new.save(str(run))
    assert sorted(os.listdir(run)) == [".my.new-notes", "autoencoder.safetensors", "diffusion.safetensors",
                                       "link.txt", "notes", "ubdiff.json"]
    assert (run / "link.txt").read_text() == "user data" and os.path.islink(run / "link.txt")
    np.testing.assert_array_equal(UBDiff.load(str(run)).autoencoder.flat("param"), new.autoencoder.flat("param"))
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_save_through_a_symlinked_run_folder(tmp_path, runs):
    old, new = runs
    old.save(str(tmp_path / "real"))
    os.symlink("real", tmp_path / "alias")
    new.save(str(tmp_path / "alias"))
    assert os.path.islink(tmp_path / "alias") and sorted(os.listdir(tmp_path)) == ["alias", "real"]
    np.testing.assert_array_equal(UBDiff.load(str(tmp_path / "real")).autoencoder.flat("param"),
                                  new.autoencoder.flat("param"))
