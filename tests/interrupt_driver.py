"""Kill a writer at each of its file-system write points; report what a reader then finds.

    python tests/interrupt_driver.py SCENARIO WORKDIR [--fallback]

SCENARIO: save (a run folder over an older run), save_fresh (into a new
folder), generate (a generated dataset over an older generation),
make_dataset (a new dataset, then resumed). --fallback disables the atomic
exchange of two names (as on a file system without RENAME_EXCHANGE), so the
two-rename path and its recovery are exercised.

The writer runs in a child forked from this process (models built once here,
one thread, so fork is safe). A hook on every call that changes the file
system (create, write-out, fsync, rename, replace, exchange, link, unlink,
remove, rmtree, fallocate) SIGKILLs the child just before the k-th call, for
k = 1..N where N is the number of such calls of an uninterrupted run. (A
call made inside another -- rmtree's unlinks -- belongs to that one point.) A
SIGKILL is a real kill: no finally block, no cleanup handler runs; only the
kernel releases the child's locks. Then this process reads the folder as a
user would and prints one JSON line per k: {"scenario", "k", "n", "outcome",
"detail", "after"}. outcome: "old" / "new" (the folder loads and equals the
old / new content exactly), "absent" (nothing there yet), "refused" (a clean
ubdiff error, for make_dataset only: an unfinished dataset), or anything else
(a failure: a mix, a crash, a wrong error). "after": what a subsequent
uninterrupted write left ("clean" when it equals the new content and no
temporary is left anywhere).
"""
import json
import os
import shutil
import signal
import sys

os.environ["OMP_NUM_THREADS"] = "1"          # no thread pools before fork
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402

import ubdiff  # noqa: E402
from ubdiff import UBDiff  # noqa: E402
from ubdiff.checkpoint import CheckpointError  # noqa: E402
from ubdiff.data import DataError, OpenFWIDataset, files, make_dataset  # noqa: E402
from ubdiff.metrics._io import load_folder  # noqa: E402

AE = dict(dim1=4, dim2=4, dim3=8, dim4=8, latent=16, head_width=4, heads=2, mlp_hidden=16, nt=50, max_batch=8)
DIFF = dict(dim=8, dim_mults=(1, 2), groups=4, heads=2, dim_head=8, timesteps=32)
CFG = {"autoencoder": AE, "diffusion": DIFF}
GEN = dict(sampler="ddim", steps=2, file_size=2, progress=False)
DS = dict(family="flatvel-a", maps=5, paired=3, file_size=2, nt=8, preview=False, chunk=1, progress=False)

_POINTS = [(os, n) for n in ("replace", "rename", "fsync", "unlink", "remove", "rmdir", "link", "symlink",
                             "mkdir", "posix_fallocate")]


def _install_kill(k, fallback):
    """Count (k = 0) or kill at the k-th file-system change; returns the counter."""
    import tempfile

    import safetensors.numpy as stn

    count = [0]
    targets = _POINTS + [(tempfile, "mkstemp"), (tempfile, "mkdtemp"), (shutil, "rmtree"), (files, "exchange"),
                         (stn, "save_file"), (np.lib.format, "write_array")]
    if fallback:
        files.exchange = lambda a, b: False

    depth = [0]   # a call made inside a hooked call (rmtree's unlinks) is part of that one write point
    for mod, name in targets:
        real = getattr(mod, name)

        def hooked(*a, _real=real, **kw):
            if depth[0] == 0:
                count[0] += 1
                if count[0] == k:
                    os.kill(os.getpid(), signal.SIGKILL)
            depth[0] += 1
            try:
                return _real(*a, **kw)
            finally:
                depth[0] -= 1
        setattr(mod, name, hooked)
    return count


def _run_child(k, fallback, write):
    """Fork; the child runs write() with the kill hook; returns (child status, points counted)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            count = _install_kill(k, fallback)
            write()
            os.write(w, str(count[0]).encode())
        except BaseException as e:   # the child never returns into the parent's code
            os.write(w, f"error {type(e).__name__}: {e}".encode()[:4000])
            code = 3
        os._exit(code)
    os.close(w)
    out = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        out += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return status, out.decode()


def _temps(top):
    """Temporaries anywhere under top (and its siblings' temporaries)."""
    found = []
    for dirpath, dirs, names in os.walk(top):
        found += [os.path.join(dirpath, n) for n in dirs + names if files.is_temp_name(n)]
    return found


# ---- scenarios -----------------------------------------------------------------------
def _flat(m):
    ae, d = m.autoencoder, m.diffusion
    return [ae.flat(k).copy() for k in ("param", "m", "v", "buf")] + [d.flat(k).copy() for k in ("param", "ema")]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def _models():
    ubdiff.set_num_threads(1)
    old = UBDiff(CFG, seed=0)
    old.set_constants("flatvel-a")
    old.state["step1"]["epoch"] = 1
    new = UBDiff(CFG, seed=1)
    new.set_constants("curvevel-a")
    new.state["step1"]["epoch"] = 2
    new.history["step1"].append({"epoch": 1, "total": 0.5})
    return old, new


def scenario_save(work, fresh):
    old, new = _models()
    template = os.path.join(work, "template")
    if not fresh:
        old.save(template)
        with open(os.path.join(template, "notes.txt"), "w") as f:
            f.write("kept by the user")
    ref_old, ref_new = _flat(old), _flat(new)
    parent = os.path.join(work, "runs")
    run = os.path.join(parent, "run")

    def classify():
        if not os.path.lexists(run) and not [n for n in os.listdir(parent) if n.startswith(".run.old-")]:
            return "absent", ""
        try:
            m = UBDiff.load(run)
        except CheckpointError as e:
            if fresh and "no ubdiff.json" in str(e):
                return "absent", str(e)
            return "error", str(e)
        f = _flat(m)
        if not fresh and not os.path.isfile(os.path.join(run, "notes.txt")):
            return "lost user file", ""
        if _same(f, ref_old) and m.state == old.state and m.constants == old.constants:
            return "old", ""
        if _same(f, ref_new) and m.state == new.state and m.constants == new.constants:
            return "new", ""
        return "MIX", f"state {m.state} constants {m.constants}"

    def reset():
        shutil.rmtree(parent, ignore_errors=True)
        os.makedirs(parent)
        if not fresh:
            shutil.copytree(template, run)

    def after():
        new.save(run)
        got = classify()[0]
        extra = sorted(set(os.listdir(parent)) - {"run"}) + _temps(parent)
        inside = sorted(set(os.listdir(run)) - {"ubdiff.json", "autoencoder.safetensors", "diffusion.safetensors",
                                                "notes.txt"})
        return "clean" if got == "new" and not extra and not inside else f"{got}; left {extra + inside}"

    return reset, (lambda: new.save(run)), classify, after


def scenario_generate(work):
    old, new = _models()
    new.set_constants("flatvel-a")
    template = os.path.join(work, "template")
    old.generate(3, template, seed=1, **GEN)
    with open(os.path.join(template, "readme.txt"), "w") as f:
        f.write("kept by the user")
    ref_old = OpenFWIDataset.from_folder(template)[:]
    ref_dir = os.path.join(work, "ref_new")
    new.generate(3, ref_dir, seed=2, **GEN)
    ref_new = OpenFWIDataset.from_folder(ref_dir)[:]
    parent = os.path.join(work, "gens")
    gen = os.path.join(parent, "gen")

    def classify():
        try:
            s, v = OpenFWIDataset.from_folder(gen)[:]
            d = load_folder(gen)
        except (DataError, FileNotFoundError) as e:
            return "error", str(e)
        if not (np.array_equal(d["velocity"], v) and np.array_equal(d["seismic"], s)):
            return "readers disagree", ""
        if not os.path.isfile(os.path.join(gen, "readme.txt")):
            return "lost user file", ""
        for name, (rs, rv) in (("old", ref_old), ("new", ref_new)):
            if s.shape == rs.shape and np.array_equal(s, rs) and np.array_equal(v, rv):
                return name, ""
        return "MIX", ""

    def reset():
        shutil.rmtree(parent, ignore_errors=True)
        os.makedirs(parent)
        shutil.copytree(template, gen)

    def after():
        new.generate(3, gen, seed=2, **GEN)
        got = classify()[0]
        extra = sorted(set(os.listdir(parent)) - {"gen"}) + _temps(parent)
        return "clean" if got == "new" and not extra else f"{got}; left {extra}"

    return reset, (lambda: new.generate(3, gen, seed=2, **GEN)), classify, after


def fake_simulate(vel, *, freq=15.0, nt=1000, dt=1e-3):
    t = np.arange(nt, dtype=np.float32)[None, None, :, None]
    shot = np.arange(5, dtype=np.float32)[None, :, None, None]
    return (((vel[:, :, 0:1, :] - 3000.0) / 100.0) * np.cos(0.3 * t * (shot + 1))).astype(np.float32)


def scenario_make_dataset(work):
    ref_dir = os.path.join(work, "ref")
    make_dataset(out_dir=ref_dir, simulate=fake_simulate, **DS)
    ref = OpenFWIDataset.from_folder(ref_dir)
    ref_all = ref[:]
    ref_vel = OpenFWIDataset.from_folder(ref_dir, velocity_only=True)[:]
    ds = os.path.join(work, "ds")

    def classify():
        if not os.path.exists(os.path.join(ds, "ubdiff_dataset.json")):
            return "absent", ""
        try:
            s, v = OpenFWIDataset.from_folder(ds)[:]
        except DataError as e:
            if "incomplete" not in str(e):
                return "error", str(e)
            # what partial=True reads must be exactly the reference's first pairs / maps
            try:
                part = OpenFWIDataset.from_folder(ds, partial=True)
                ps, pv = part[:]
            except DataError as e2:
                if "no seismic file finished" not in str(e2):
                    return "error", f"partial: {e2}"
                ps = pv = np.zeros((0,))
            if len(pv) and not (np.array_equal(ps, ref_all[0][:len(ps)]) and np.array_equal(pv, ref_all[1][:len(pv)])):
                return "MIX", "partial read differs from the reference"
            try:
                vo = OpenFWIDataset.from_folder(ds, partial=True, velocity_only=True)[:]
            except DataError:
                vo = np.zeros((0,))
            if len(vo) and not np.array_equal(vo, ref_vel[:len(vo)]):
                return "MIX", "partial velocity differs from the reference"
            return "refused", str(e)
        if np.array_equal(s, ref_all[0]) and np.array_equal(v, ref_all[1]):
            return "new", ""
        return "MIX", ""

    def reset():
        shutil.rmtree(ds, ignore_errors=True)

    def after():
        make_dataset(out_dir=ds, simulate=fake_simulate, **DS)
        got = classify()[0]
        left = _temps(ds)
        return "clean" if got == "new" and not left else f"{got}; left {left}"

    return reset, (lambda: make_dataset(out_dir=ds, simulate=fake_simulate, **DS)), classify, after


def main():
    scenario, work = sys.argv[1], sys.argv[2]
    fallback = "--fallback" in sys.argv[3:]
    os.makedirs(work, exist_ok=True)
    make = {"save": lambda: scenario_save(work, False), "save_fresh": lambda: scenario_save(work, True),
            "generate": lambda: scenario_generate(work), "make_dataset": lambda: scenario_make_dataset(work)}
    reset, write, classify, after = make[scenario]()
    reset()
    status, out = _run_child(0, fallback, write)   # count the write points of an uninterrupted run
    if status != 0 or not out.isdigit():
        print(json.dumps({"scenario": scenario, "k": 0, "n": 0, "outcome": "writer failed", "detail": out}))
        return
    n = int(out)
    for k in range(1, n + 1):
        reset()
        status, out = _run_child(k, fallback, write)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        outcome, detail = classify() if killed else ("not killed", out)
        print(json.dumps({"scenario": scenario, "k": k, "n": n, "outcome": outcome, "detail": detail[:300],
                          "after": after()}), flush=True)


if __name__ == "__main__":
    main()
