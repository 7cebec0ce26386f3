"""A newcomer's first ten minutes (issue 15): a quiet install, scripts that reuse an
up-to-date build, the documented submodules at hand after ``import ubdiff``, and the
README's picture."""
import importlib.machinery
import importlib.util
import os
import re
import shutil
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_build_stamp():
    spec = importlib.util.spec_from_file_location("build_stamp", os.path.join(ROOT, "scripts", "build_stamp.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bs = _load_build_stamp()


# 1. a quiet install -------------------------------------------------------------------------

def test_pyproject_reads_without_setuptools_warnings():
    """pyproject.toml through setuptools' own reader (what a build does first): no
    (deprecation) warning, and the SPDX license with its file."""
    setuptools = pytest.importorskip("setuptools")
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    floor = re.search(r'requires\s*=\s*\[[^\]]*"setuptools>=(\d+)', text)
    assert floor, "build-system.requires must pin a setuptools floor"
    # 77.0: first setuptools that reads `license = "<SPDX>"` and `license-files` (PEP 639).
    assert int(floor.group(1)) >= 77, f"setuptools floor {floor.group(1)} < 77 cannot read the SPDX license"
    have = int(setuptools.__version__.split(".")[0])
    assert have >= 77, f"the test extra needs setuptools >= 77, this environment has {setuptools.__version__}"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), os.path.join(ROOT, "pyproject.toml"))
    msgs = [f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught]
    assert msgs == [], f"setuptools warned about pyproject.toml: {msgs}"
    assert dist.metadata.license_expression == "MIT"
    assert dist.metadata.license_files == ["LICENSE"]
    assert os.path.isfile(os.path.join(ROOT, "LICENSE"))


def _copy_tree_for_build(dst):
    """The files a build reads, without this checkout's build outputs and virtual env."""
    skip = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "*.so", "*.o",
                                  "__pycache__", ".pytest_cache", "demo_out", "runs", "notebooks",
                                  "benchmarks", "tests")
    shutil.copytree(ROOT, dst, ignore=skip)


@pytest.mark.slow  # builds the extension (C + CUDA when nvcc is found): minutes on 2 cores
def test_wheel_build_prints_no_deprecation_warning(tmp_path):
    src, out = tmp_path / "src", tmp_path / "wheels"
    _copy_tree_for_build(src)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", str(src), "-w", str(out)],
                       capture_output=True, text=True, timeout=3600)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-4000:]
    assert list(out.glob("ubdiff-*.whl")), log[-4000:]
    bad = [ln for ln in log.splitlines() if re.search(r"deprecat|BuildBackendWarning|SetuptoolsWarning", ln, re.I)]
    assert bad == [], "pip wheel printed warnings:\n" + "\n".join(bad)


# 2. the scripts reuse an up-to-date build ---------------------------------------------------

def _fake_checkout(root):
    """A tree with the shape build_stamp.py looks at: sources, build files, a built extension."""
    for rel, text in {"setup.py": "setup()\n", "pyproject.toml": "[project]\n",
                      "csrc/ubd.h": "int f(void);\n", "csrc/cpu/f.c": "int f(void) { return 1; }\n"}.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    os.makedirs(os.path.join(root, "ubdiff"), exist_ok=True)
    so = os.path.join(root, "ubdiff", "_ubdiff" + importlib.machinery.EXTENSION_SUFFIXES[0])
    open(so, "w").close()
    return so


def _edit(root, rel, text):
    with open(os.path.join(root, rel), "w") as f:
        f.write(text)


def test_build_stamp_sees_what_a_build_depends_on(tmp_path, monkeypatch):
    for k in bs.SWITCHES:
        monkeypatch.delenv(k, raising=False)
    root, stamp = str(tmp_path), str(tmp_path / "stamp")
    so = _fake_checkout(root)
    assert bs.source_files(root) == ["csrc/cpu/f.c", "csrc/ubd.h", "pyproject.toml", "setup.py"]

    assert bs.check(stamp, root) == "no previous build"
    bs.write(stamp, root)
    assert not os.path.exists(stamp + ".pending")
    assert bs.check(stamp, root) is None

    # build outputs beside the sources are no inputs
    _edit(root, "csrc/cpu/f.o", "object")
    assert bs.check(stamp, root) is None

    for rel, text in [("csrc/cpu/f.c", "int f(void) { return 2; }\n"), ("setup.py", "setup(x=1)\n"),
                      ("pyproject.toml", "[project]\nname='x'\n"), ("csrc/new.h", "\n")]:
        reason = bs.check(stamp, root)
        assert reason is None, reason
        _edit(root, rel, text)
        reason = bs.check(stamp, root)
        assert reason is not None and rel in reason, (rel, reason)
        bs.write(stamp, root)
    os.remove(os.path.join(root, "csrc/new.h"))
    assert "csrc/new.h" in bs.check(stamp, root)
    bs.write(stamp, root)
    assert bs.check(stamp, root) is None

    monkeypatch.setenv("UBDIFF_CUDA", "0")
    assert "UBDIFF_CUDA" in bs.check(stamp, root)
    bs.write(stamp, root)
    assert bs.check(stamp, root) is None

    os.remove(so)
    assert "missing" in bs.check(stamp, root)


def test_build_stamp_extras_and_edits_during_a_build(tmp_path, monkeypatch):
    for k in bs.SWITCHES:
        monkeypatch.delenv(k, raising=False)
    root, stamp = str(tmp_path), str(tmp_path / "stamp")
    _fake_checkout(root)
    # a demo build (no extras) does not serve the tests ...
    assert bs.check(stamp, root) is not None
    bs.write(stamp, root)
    assert "test" in bs.check(stamp, root, ["test"])
    bs.write(stamp, root, ["test"])
    # ... a test build serves both, and a later demo rebuild keeps the test extras
    assert bs.check(stamp, root, ["test"]) is None and bs.check(stamp, root) is None
    _edit(root, "csrc/ubd.h", "int g(void);\n")
    assert bs.check(stamp, root) is not None
    bs.write(stamp, root)
    assert bs.check(stamp, root, ["test"]) is None

    # a source edited while the build runs: the stamp keeps the state seen before the build
    _edit(root, "csrc/ubd.h", "int h(void);\n")
    assert bs.check(stamp, root) is not None          # the script starts a build ...
    _edit(root, "csrc/ubd.h", "int k(void);\n")       # ... the user edits meanwhile ...
    bs.write(stamp, root)                              # ... the build finishes
    assert "csrc/ubd.h" in bs.check(stamp, root)

    # a corrupt stamp means: build
    _edit(root, os.path.basename(stamp), "{not json")
    assert bs.check(stamp, root) == "no previous build"

    # the checkout moved: an editable install points at the old place
    bs.write(stamp, root)
    moved = str(tmp_path / "moved")
    shutil.copytree(root, moved)
    assert "moved" in bs.check(os.path.join(moved, "stamp"), moved)


def _scripts_sandbox(tmp_path):
    """A checkout with the real scripts and a fake .venv/bin/python that logs each call: the
    stamp helper runs for real, pip / pytest / the demo are only recorded ("pip install"
    'builds' the extension by creating it)."""
    root = tmp_path / "repo"
    _fake_checkout(str(root))
    os.remove(os.path.join(root, "ubdiff", "_ubdiff" + importlib.machinery.EXTENSION_SUFFIXES[0]))
    os.makedirs(root / "scripts")
    for name in ("test.sh", "demo.sh", "venv.sh", "build_stamp.py"):
        shutil.copy(os.path.join(ROOT, "scripts", name), root / "scripts" / name)
    log = tmp_path / "calls.log"
    fake = root / ".venv" / "bin" / "python"
    os.makedirs(fake.parent)
    so = "ubdiff/_ubdiff" + importlib.machinery.EXTENSION_SUFFIXES[0]
    fake.write_text(f"""#!/usr/bin/env bash
echo "$*" >> {log}
case "$1 $2 $3" in
  "-m pip install") touch {so}; exit 0;;
  -m*) exit 0;;
esac
exec {sys.executable} "$@"
""")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in os.environ.items() if k not in bs.SWITCHES}

    def run(script, *args):
        if log.exists():
            log.unlink()
        r = subprocess.run(["bash", f"scripts/{script}", *args], cwd=root, env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return [ln for ln in log.read_text().splitlines() if not ln.startswith("scripts/build_stamp.py")]

    return root, run


def test_scripts_build_once_then_start_at_once(tmp_path):
    root, run = _scripts_sandbox(tmp_path)
    # fresh checkout: everything
    assert run("test.sh", "-q", "-k", "x y") == [
        "-m pip install -q --upgrade pip", "-m pip install -q -e .[test]", "-m pytest -q -k x y"]
    # nothing changed: straight to pytest; no arguments = the default run
    assert run("test.sh") == ["-m pytest -m not slow"]
    # the demo reuses the test build (its extras are a superset)
    assert run("demo.sh", "--scale", "0.2") == ["-m ubdiff demo --scale 0.2"]
    assert run("demo.sh") == ["-m ubdiff demo"]
    # --rebuild forces a build and is not passed on
    assert run("demo.sh", "--rebuild", "--seed", "3") == [
        "-m pip install -q --upgrade pip", "-m pip install -q -e .", "-m ubdiff demo --seed 3"]
    assert run("test.sh", "-x") == ["-m pytest -x"]      # the test extras stayed installed
    # a C source changed: build again, once
    (root / "csrc" / "cpu" / "f.c").write_text("int f(void) { return 3; }\n")
    assert run("test.sh", "-x")[1:] == ["-m pip install -q -e .[test]", "-m pytest -x"]
    assert run("test.sh", "-x") == ["-m pytest -x"]
    assert run("test.sh", "--rebuild")[1:] == ["-m pip install -q -e .[test]", "-m pytest -m not slow"]


# 3. the package at hand -------------------------------------------------------------------

def _fresh_python(code):
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_documented_submodules_are_attributes_after_import_ubdiff():
    out = _fresh_python("""
import ubdiff
maps = ubdiff.data.families.generate_velocity("flatvel-a", 2, seed=0)
rec = ubdiff.physics.forward_model(maps, nt=50)
print(rec.shape, float(ubdiff.metrics.mae(maps, maps, normalized=False)))
for name in ("ops", "conv_ops", "norm_ops", "attn_ops", "checkpoint", "models", "official", "pipeline"):
    assert getattr(ubdiff, name).__name__ == "ubdiff." + name, name
assert ubdiff.UBDiff is ubdiff.pipeline.UBDiff
from ubdiff import UBDiff, metrics
assert UBDiff is ubdiff.UBDiff and metrics is ubdiff.metrics
assert {"data", "physics", "metrics", "UBDiff"} <= set(dir(ubdiff))
try:
    ubdiff.no_such_thing
except AttributeError as e:
    assert "no_such_thing" in str(e)
else:
    raise AssertionError("no AttributeError")
""")
    assert out.split("\n")[0] == "(2, 5, 50, 70) 0.0"


def test_import_ubdiff_is_light():
    # What `import ubdiff` must not pull in: these cost most of a second (SciPy, matplotlib,
    # the pipeline and its models) and wait until ubdiff.data / ubdiff.UBDiff are used.
    out = _fresh_python("""
import sys, time
t = time.perf_counter()
import ubdiff
dt = time.perf_counter() - t
heavy = [m for m in ("scipy", "matplotlib", "ubdiff.pipeline", "ubdiff.data", "ubdiff.metrics", "tqdm",
                     "safetensors") if m in sys.modules]
print(dt, heavy)
""")
    dt, heavy = out.split(" ", 1)
    assert heavy.strip() == "[]"
    # ~0.2-0.3 s on an idle machine (NumPy, the extension with its CUDA libraries); the
    # bound is generous for a loaded 2-core CI machine.
    assert float(dt) < 5.0, f"import ubdiff took {float(dt):.2f} s"


# 4. the README's picture ---------------------------------------------------------------------

def test_readme_opens_with_a_small_picture_of_generated_pairs():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        head = f.read().split("\n## ", 1)[0]
    m = re.search(r"!\[[^\]]+\]\(([^)\s]+\.png)\)", head)
    assert m, "README's opening section has no PNG picture"
    path = os.path.join(ROOT, m.group(1))
    assert os.path.isfile(path), path
    size = os.path.getsize(path)
    assert size < 150_000, f"{m.group(1)} is {size} bytes; keep the README picture under 150 KB"
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_pairs_figure_labels_shots_and_stays_small(tmp_path):
    from PIL import Image

    from ubdiff.pipeline_figure import save_pairs_figure

    rng = np.random.default_rng(0)
    vel = rng.uniform(1500, 4500, (3, 1, 70, 70)).astype(np.float32)
    seis = rng.normal(0, 1, (3, 5, 250, 70)).astype(np.float32)   # noise: PNG's worst case
    p = save_pairs_figure(tmp_path / "p.png", vel, seis, title="t", k=2, shots=[0, 4])
    with Image.open(p) as im:
        assert im.mode == "P" and im.size[0] > 300
    full = save_pairs_figure(tmp_path / "full.png", vel, seis, k=4)          # k > n: the 3 there are
    assert os.path.getsize(full) < 300_000
    with pytest.raises(ValueError, match="shots must be indices below 5"):
        save_pairs_figure(tmp_path / "bad.png", vel, seis, shots=[5])
    with pytest.raises(ValueError, match=r"velocity must be \(n, 1, H, W\)"):
        save_pairs_figure(tmp_path / "bad.png", vel[0], seis)
    assert sorted(os.listdir(tmp_path)) == ["full.png", "p.png"]   # nothing half-written left
