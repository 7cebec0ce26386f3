"""Fuzz of the raw extension and the public API with bad input (issue 9).

The cases live in tests/fuzz_cases.py (see its docstring for the families).
They run in subprocesses, a family per batch: a crash then fails this test
instead of killing the run. When a worker dies, the case it was in (it prints
the name of each case before running it) is re-run alone, so the report names
the case that crashes, and the rest of the batch goes on in a fresh worker. Every case must end "clean" (a
clear exception) or "ok" (a right result); "wrong" (accepted bad input, a
swallowed NaN, ...), "error" (an unexpected exception type), "crash" and
"hang" fail.

Also a script, e.g. to compare another build:
    python tests/test_fuzz.py [--python /other/venv/bin/python] [--family bytes]
"""
from __future__ import annotations

import collections
import concurrent.futures
import os
import select
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "fuzz_cases.py")
GOOD = ("clean", "ok")
BATCH_TIMEOUT = 600  # s, for listing the cases
CASE_TIMEOUT = 120   # s without progress: the case hangs (each takes milliseconds)


def _env():
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"  # tiny cases; keeps shared CI machines responsive
    env.setdefault("PYTHONFAULTHANDLER", "1")  # a crash prints the Python stack to stderr
    return env


def list_cases(python=sys.executable) -> list:
    p = subprocess.run([python, WORKER, "--list"], capture_output=True, text=True, env=_env(), timeout=BATCH_TIMEOUT)
    if p.returncode != 0:
        raise RuntimeError(f"listing the fuzz cases failed (rc {p.returncode}):\n{p.stderr[-3000:]}")
    return [tuple(line.split("\t", 1)) for line in p.stdout.splitlines() if "\t" in line]


def _run_once(names, python, results) -> tuple:
    """Runs `names` in one worker, adding to `results`; returns (culprit, kind, detail)
    for the case the worker died or hung in (None when it finished)."""
    with tempfile.TemporaryFile(mode="w+") as err, tempfile.TemporaryFile(mode="w+") as todo:
        todo.write("\n".join(names) + "\n")  # a file, not a pipe: the worker reads it at its own pace
        todo.seek(0)
        p = subprocess.Popen([python, WORKER], stdin=todo, stdout=subprocess.PIPE, stderr=err, env=_env())
        current, kind, buf = None, None, b""
        fd = p.stdout.fileno()  # raw reads: no buffered line may hide from select
        while True:
            ready, _, _ = select.select([fd], [], [], CASE_TIMEOUT)
            if not ready:  # no line for CASE_TIMEOUT s: the case hangs
                p.kill()
                kind = "hang"
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                parts = line.decode("utf-8", "replace").split("\t")
                if parts[0] == "START":
                    current = parts[1]
                elif parts[0] == "RESULT" and len(parts) >= 3:
                    results[parts[1]] = (parts[2], parts[3] if len(parts) > 3 else "")
                    current = None
        rc = p.wait()
        p.stdout.close()
        if current is None and rc == 0:
            return None, None, ""
        err.seek(0)
        tail = " / ".join(err.read().strip().splitlines()[-6:])
        return current, kind or "crash", f"exit status {rc}: {tail}"[:800]


def run_batch(names, python=sys.executable) -> dict:
    """name -> (status, detail) for every name. When the worker dies (or hangs) the
    case it was in is re-run alone to confirm it, and the rest go on in a new worker."""
    results, pending = {}, list(names)
    while pending:
        culprit, kind, detail = _run_once(pending, python, results)
        if culprit is None and kind is None:
            break
        if culprit is not None and len(pending) > 1:
            alone = {}
            c2, k2, d2 = _run_once([culprit], python, alone)
            if culprit in alone:
                kind, detail = kind, f"{detail} (alone it ended {alone[culprit][0]}: after earlier cases only)"
            else:
                kind, detail = k2 or kind, d2 or detail
        if culprit is None:  # died between cases: blame the first case without a result
            culprit = next(n for n in pending if n not in results)
        results[culprit] = (kind, detail)
        pending = [n for n in pending if n not in results]
    return results


def run_all(python=sys.executable, families=None, workers=2) -> tuple:
    cases = list_cases(python)
    by_family = collections.defaultdict(list)
    for fam, name in cases:
        if families is None or fam in families:
            by_family[fam].append(name)
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for r in pool.map(lambda names: run_batch(names, python), by_family.values()):
            results.update(r)
    return by_family, results


def summary(by_family, results) -> str:
    lines = []
    total = collections.Counter()
    for fam, names in sorted(by_family.items()):
        c = collections.Counter(results[n][0] for n in names)
        total.update(c)
        lines.append(f"  {fam:10s} {len(names):5d} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    n = sum(total.values())
    bad = n - total["clean"] - total["ok"]
    head = (f"fuzz: {n} cases tried / {total['clean']} clean errors / {total['ok']} correct results / "
            f"{total['crash'] + total['hang']} crashes / {bad - total['crash'] - total['hang']} wrong or unclean")
    return "\n".join([head] + lines)


def failures(results) -> list:
    return sorted((n, s, d) for n, (s, d) in results.items() if s not in GOOD)


def test_fuzz_bad_inputs_never_crash_or_pass_silently(capsys):
    by_family, results = run_all()
    listed = sum(len(v) for v in by_family.values())
    assert listed > 2000 and len(results) == listed
    with capsys.disabled():
        print("\n" + summary(by_family, results))
    bad = failures(results)
    assert not bad, f"{len(bad)} fuzz cases failed:\n" + "\n".join(f"{s:6s} {n}: {d}" for n, s, d in bad[:40])


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", default=sys.executable, help="interpreter whose ubdiff build to fuzz")
    ap.add_argument("--family", action="append", help="only these families (repeatable)")
    a = ap.parse_args()
    fams, res = run_all(a.python, set(a.family) if a.family else None)
    print(summary(fams, res))
    for n, s, d in failures(res):
        print(f"{s:6s} {n}: {d}")
    sys.exit(1 if failures(res) else 0)
