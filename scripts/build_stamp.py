"""Is the ubdiff build in .venv up to date?  (stdlib only; used by test.sh and demo.sh)

    python scripts/build_stamp.py check STAMP [EXTRA ...]   exit 0: up to date; 1: build needed
    python scripts/build_stamp.py write STAMP [EXTRA ...]   after a successful build

A build depends on the C/CUDA sources (every file under csrc/), setup.py and
pyproject.toml, on the switches setup.py reads (UBDIFF_CUDA, UBDIFF_NATIVE,
UBDIFF_CUDA_ARCH, whether nvcc is found), and on where the checkout lies (an
editable install points at it).  `check` compares all of that with the stamp
left by the last build and says what changed; it also notes the state it saw in
STAMP.pending, which `write` turns into the stamp, so a source edited while the
build runs still counts as changed next time (the scripts run `check` before
every build, --rebuild too).  Python files need no rebuild: the install is
editable.

The extras (``test``) installed with the build are remembered too: a build
made for the demo (no extras) does not satisfy the tests (``.[test]``).
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import shutil
import sys

FORMAT = "ubdiff-build-stamp-1"
SWITCHES = ("UBDIFF_CUDA", "UBDIFF_NATIVE", "UBDIFF_CUDA_ARCH")
# Build outputs that may sit beside the sources; they are not inputs of the build.
IGNORED_SUFFIXES = (".o", ".so", ".pyc")


def source_files(root: str) -> list[str]:
    """Paths (relative to root, '/'-separated, sorted) of the files a build reads."""
    found = [f for f in ("setup.py", "pyproject.toml") if os.path.isfile(os.path.join(root, f))]
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, "csrc")):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in filenames:
            if not name.endswith(IGNORED_SUFFIXES):
                found.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return sorted(found)


def build_state(root: str, extras=()) -> dict:
    """Everything the build depends on, as a JSON-able dict."""
    files = {}
    for rel in source_files(root):
        with open(os.path.join(root, rel), "rb") as f:
            files[rel] = hashlib.sha256(f.read()).hexdigest()
    return {
        "format": FORMAT,
        "root": os.path.realpath(root),
        "switches": {k: os.environ.get(k) for k in SWITCHES},
        # as setup.py's _find_nvcc: a build compiles csrc/cuda/ exactly when nvcc is found
        "nvcc": shutil.which("nvcc") or (
            "/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None),
        "extras": sorted(set(extras)),
        "files": files,
    }


def extension_built(root: str) -> bool:
    """True when the compiled extension ubdiff/_ubdiff.* is in the tree (editable build)."""
    pkg = os.path.join(root, "ubdiff")
    return any(os.path.isfile(os.path.join(pkg, "_ubdiff" + sfx))
               for sfx in importlib.machinery.EXTENSION_SUFFIXES)


def why_stale(stamp: dict | None, now: dict, root: str) -> str | None:
    """None when a build with state `stamp` serves `now`; else the reason, in words."""
    if not stamp:
        return "no previous build"
    if stamp.get("format") != FORMAT:
        return "stamp from another version of this script"
    if not extension_built(root):
        return "the compiled extension ubdiff/_ubdiff is missing"
    if stamp.get("root") != now["root"]:
        return f"the checkout moved (built in {stamp.get('root')})"
    for key in ("switches", "nvcc"):
        if stamp.get(key) != now[key]:
            return f"build switches changed ({key}: {stamp.get(key)} -> {now[key]})"
    missing = sorted(set(now["extras"]) - set(stamp.get("extras", [])))
    if missing:
        return f"extras not installed yet: {', '.join(missing)}"
    old, new = stamp.get("files", {}), now["files"]
    changed = sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        return "changed since the last build: " + ", ".join(changed[:3]) + more
    return None


def read_stamp(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_json(path: str, obj: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def check(stamp_path: str, root: str, extras=()) -> str | None:
    """why_stale() for the stamp at stamp_path.  Notes the state it saw in STAMP.pending:
    a build that follows is of these sources, whatever is edited while it runs."""
    now = build_state(root, extras)
    _write_json(stamp_path + ".pending", now)
    return why_stale(read_stamp(stamp_path), now, root)


def write(stamp_path: str, root: str, extras=()) -> None:
    """Records a successful build: the state the last check() saw (else the state now),
    with the extras installed by this and by earlier builds (pip keeps those)."""
    state = read_stamp(stamp_path + ".pending") or build_state(root, extras)
    old = read_stamp(stamp_path) or {}
    kept = old.get("extras", []) if old.get("format") == FORMAT else []
    state["extras"] = sorted(set(state["extras"]) | set(extras) | set(kept))
    _write_json(stamp_path, state)
    if os.path.exists(stamp_path + ".pending"):
        os.remove(stamp_path + ".pending")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] not in ("check", "write"):
        print("\n".join(__doc__.strip().splitlines()[:4]), file=sys.stderr)
        return 2
    cmd, stamp_path, extras = argv[0], argv[1], argv[2:]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if cmd == "write":
        write(stamp_path, root, extras)
        return 0
    reason = check(stamp_path, root, extras)
    if reason is None:
        print("ubdiff build is up to date (scripts/build_stamp.py; --rebuild forces one)")
        return 0
    print(f"building ubdiff ({reason}): a few minutes, C and CUDA sources")
    return 1


if __name__ == "__main__":
    sys.exit(main())
