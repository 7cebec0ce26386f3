"""Fuzz family "ae_state" (tests/fuzz_cases.py registers it): the co-latent
autoencoder's state entry points -- ae_get / ae_set / ae_zero, ae_apply_update,
ae_trained_range, ae_set_steps, encode_backward -- and the public methods over
them, with bad names, kinds, shapes, dtypes, handles, NaN, out-of-range modes
and calls in the wrong order. Every case must end "clean" (a clear exception)
or "ok" (a checked right result); each runs in the fuzz worker subprocess, so a
crash fails test_fuzz instead of the run.

A model is built fresh (tiny config of fuzz_cases.AE_OVR, ~10 ms) wherever a
case may change it, so cases stay independent.
"""
from __future__ import annotations

import math

import numpy as np

from ubdiff._native import lib

W0 = "encoder.convBlock1_1.layers.0.weight"  # (dim1, 1, 1, 1): the first tensor of the flat buffer
RM0 = "encoder.convBlock1_1.layers.1.running_mean"
ADAM = (1e-3, 0.9, 0.999, 1e-8, 0.0)
MODE_NUMS = (1, 2, 3, 4, 5)  # ubdiff.models.autoencoder.MODES
BAD_MODES = {"0": (0, ValueError), "6": (6, ValueError), "-1": (-1, ValueError), "2**31": (2**31, OverflowError),
             "str": ("step1", TypeError), "None": (None, TypeError), "float": (1.0, TypeError)}


class Falsy:
    """A freeze flag whose truth value raises."""

    def __bool__(self):
        raise ValueError("no truth value")


def _state(m):
    return [m.flat(k).copy() for k in ("param", "grad", "m", "v", "buf")]


def _same(a, b):
    return all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b))


def build(fc):
    """name -> case function; fc is the fuzz_cases module (helpers, Wrong, the model builders)."""
    Wrong, expect_raise, new = fc.Wrong, fc.expect_raise, fc.new_ae_model
    cases = {}

    def refused_unchanged(call, types=fc.CLEAN, match=None, steps=True):
        """call(model) raises and leaves every buffer (and the Adam step counts) as they were."""
        def run():
            m = new()
            before, st = _state(m), m.optimizer_steps()
            r = expect_raise(lambda: call(m), types, match)
            if not _same(before, _state(m)):
                raise Wrong("a refused call changed the model")
            if steps and m.optimizer_steps() != st:
                raise Wrong(f"a refused call moved the step counts: {st} -> {m.optimizer_steps()}")
            return r
        return run

    # ---- ae_get / ae_set / ae_zero: bad kinds, names, handles --------------------------------------
    for fn, extra in (("ae_get", ()), ("ae_zero", ())):
        f = getattr(lib, fn)
        cases[f"{fn}[kind=bogus]"] = refused_unchanged(lambda m, f=f: f(m._h, "bogus", W0), ValueError, "kind")
        cases[f"{fn}[kind=empty]"] = refused_unchanged(lambda m, f=f: f(m._h, "", W0), ValueError, "kind")
        cases[f"{fn}[kind=None]"] = refused_unchanged(lambda m, f=f: f(m._h, None, W0), TypeError)
        cases[f"{fn}[kind=NUL]"] = refused_unchanged(lambda m, f=f: f(m._h, "param\0", W0), ValueError)
        cases[f"{fn}[name=missing]"] = refused_unchanged(lambda m, f=f: f(m._h, "param", "no.such.tensor"), KeyError)
        cases[f"{fn}[name=int]"] = refused_unchanged(lambda m, f=f: f(m._h, "param", 3), TypeError)
        cases[f"{fn}[name=bytes]"] = refused_unchanged(lambda m, f=f: f(m._h, "param", W0.encode()), TypeError)
        cases[f"{fn}[name=long]"] = refused_unchanged(lambda m, f=f: f(m._h, "param", "x" * 100000), KeyError)
        # a C string stops at NUL: "W0\0junk" must not resolve to W0
        cases[f"{fn}[name=NUL]"] = refused_unchanged(lambda m, f=f: f(m._h, "param", W0 + "\0junk"), (KeyError,
                                                                                                        ValueError))
        cases[f"{fn}[buffer name as param]"] = refused_unchanged(lambda m, f=f: f(m._h, "param", RM0), KeyError)
        cases[f"{fn}[param name as buf]"] = refused_unchanged(lambda m, f=f: f(m._h, "buf", W0), KeyError)
        cases[f"{fn}[handle=None]"] = lambda f=f: expect_raise(lambda: f(None, "param", W0), TypeError)
        cases[f"{fn}[handle=diffusion]"] = lambda f=f: expect_raise(lambda: f(fc.dm(), "param", W0), TypeError)
        cases[f"{fn}[handle=str]"] = lambda f=f: expect_raise(lambda: f("ae", "param", W0), TypeError)
        cases[f"{fn}[no args]"] = lambda f=f: expect_raise(lambda: f(), TypeError)

    def good_value(m, name=W0, kind="param"):
        return np.full(m.get_tensor(name, kind).shape, 0.25, np.float32)

    set_bad = {
        "kind=bogus": (lambda m: lib.ae_set(m._h, "bogus", W0, good_value(m)), ValueError),
        "name=missing": (lambda m: lib.ae_set(m._h, "param", "nope", good_value(m)), KeyError),
        "name=int": (lambda m: lib.ae_set(m._h, "param", 7, good_value(m)), TypeError),
        "name=NUL": (lambda m: lib.ae_set(m._h, "param", W0 + "\0x", good_value(m)), (KeyError, ValueError)),
        "shape": (lambda m: lib.ae_set(m._h, "param", W0, good_value(m).reshape(-1)), ValueError),
        "shape+1": (lambda m: lib.ae_set(m._h, "param", W0, np.zeros(good_value(m).size + 1, np.float32)),
                    ValueError),
        "0-d": (lambda m: lib.ae_set(m._h, "param", W0, np.float32(1.0)), TypeError),
        "0-d array": (lambda m: lib.ae_set(m._h, "param", W0, np.array(1.0, np.float32)), ValueError),
        "whole buffer size": (lambda m: lib.ae_set(m._h, "param", None, np.zeros(m.flat().size - 1, np.float32)),
                              ValueError),
        "whole buffer 2-D": (lambda m: lib.ae_set(m._h, "param", None, np.zeros((1, m.flat().size), np.float32)),
                             ValueError),
        "float64": (lambda m: lib.ae_set(m._h, "param", W0, good_value(m).astype(np.float64)), TypeError),
        "float16": (lambda m: lib.ae_set(m._h, "param", W0, good_value(m).astype(np.float16)), TypeError),
        "int32": (lambda m: lib.ae_set(m._h, "param", W0, good_value(m).astype(np.int32)), TypeError),
        "byteswapped": (lambda m: lib.ae_set(m._h, "param", W0, good_value(m).astype(">f4")), TypeError),
        "non-contiguous": (lambda m: lib.ae_set(m._h, "buf", None,
                                                np.zeros(2 * m.flat("buf").size, np.float32)[::2]), ValueError),
        "list": (lambda m: lib.ae_set(m._h, "param", W0, good_value(m).tolist()), TypeError),
        "None": (lambda m: lib.ae_set(m._h, "param", W0, None), TypeError),
        "own view": (lambda m: lib.ae_set(m._h, "param", W0, m.flat("grad")[:good_value(m).size].reshape(
            good_value(m).shape)), ValueError),
        "own whole buffer": (lambda m: lib.ae_set(m._h, "m", None, m.flat("param")), ValueError),
        "handle=None": (lambda m: lib.ae_set(None, "param", W0, good_value(m)), TypeError),
        "handle=diffusion": (lambda m: lib.ae_set(fc.dm(), "param", W0, good_value(m)), TypeError),
        "public name=missing": (lambda m: m.set_tensor("nope", good_value(m)), KeyError),
        "public kind=bogus": (lambda m: m.set_tensor(W0, good_value(m), kind="grads"), ValueError),
        "public shape": (lambda m: m.set_tensor(W0, np.zeros(3, np.float32)), ValueError),
        "public object array": (lambda m: m.set_tensor(W0, np.array([None] * good_value(m).size, object)), TypeError),
        "public str array": (lambda m: m.set_tensor(W0, np.array(["a"] * 2)), TypeError),
    }
    for label, (call, types) in set_bad.items():
        cases[f"ae_set[{label}]"] = refused_unchanged(call, types)

    def set_roundtrip(value_of, kind="param", name=W0):
        """ae_set stores the value exactly (NaN too: a checkpoint is what it is) and nothing else moves."""
        def run():
            m = new()
            before = {k: m.flat(k).copy() for k in ("param", "grad", "m", "v", "buf")}
            val = value_of(m)
            lib.ae_set(m._h, kind, name, val)
            got = m.get_tensor(name, kind)
            if not np.array_equal(got, val, equal_nan=True):
                raise Wrong("the value read back differs from the one set")
            sl = slice(0, val.size) if name is None else None
            for k, b in before.items():
                now = m.flat(k)
                if k == kind:
                    if name is not None:
                        mask = np.ones(b.size, bool)
                        off = _offset(m, name, kind)
                        mask[off:off + val.size] = False
                        if not np.array_equal(now[mask], b[mask]):
                            raise Wrong("ae_set changed other tensors")
                    elif sl is not None and not np.array_equal(now, val.reshape(-1), equal_nan=True):
                        raise Wrong("whole-buffer set differs")
                elif not np.array_equal(now, b, equal_nan=True):
                    raise Wrong(f"ae_set of {kind} changed the {k} buffer")
            return "ok"
        return run

    def nan_value(m):
        v = good_value(m)
        v.reshape(-1)[0] = np.nan
        return v

    def inf_value(m):
        v = good_value(m)
        v.reshape(-1)[-1] = -np.inf
        return v

    def readonly_value(m):
        v = good_value(m)
        v.flags.writeable = False
        return v

    cases["ae_set[nan]"] = set_roundtrip(nan_value)
    cases["ae_set[inf]"] = set_roundtrip(inf_value)
    cases["ae_set[read-only value]"] = set_roundtrip(readonly_value)
    cases["ae_set[buf]"] = set_roundtrip(lambda m: np.full(m.get_tensor(RM0, "buf").shape, 0.5, np.float32),
                                         kind="buf", name=RM0)
    cases["ae_set[whole grad buffer]"] = set_roundtrip(
        lambda m: np.arange(m.flat("grad").size, dtype=np.float32), kind="grad", name=None)

    def zero_one():
        m = new()
        m.set_tensor(None, np.ones(m.flat("grad").size, np.float32), kind="grad")
        lib.ae_zero(m._h, "grad", W0)
        g = m.flat("grad")
        n = m.get_tensor(W0).size
        if np.any(g[:n]) or not np.all(g[n:] == 1):
            raise Wrong("ae_zero of one tensor zeroed the wrong floats")
        return "ok"
    cases["ae_zero[one tensor]"] = zero_one

    # ---- ae_apply_update --------------------------------------------------------------------------
    for label, (mode, exc) in BAD_MODES.items():
        cases[f"ae_apply_update[mode={label}]"] = refused_unchanged(
            lambda m, mode=mode: lib.ae_apply_update(m._h, mode, False, ADAM), exc)
        cases[f"ae_trained_range[mode={label}]"] = refused_unchanged(
            lambda m, mode=mode: lib.ae_trained_range(m._h, mode, False), exc)
    cases["ae_apply_update[freeze raises]"] = refused_unchanged(
        lambda m: lib.ae_apply_update(m._h, 2, Falsy(), ADAM), ValueError, "truth")
    cases["ae_trained_range[freeze raises]"] = refused_unchanged(
        lambda m: lib.ae_trained_range(m._h, 2, Falsy()), ValueError, "truth")
    cases["ae_apply_update[adam len 4]"] = refused_unchanged(lambda m: lib.ae_apply_update(m._h, 1, False, ADAM[:4]),
                                                             TypeError)
    cases["ae_apply_update[adam len 6]"] = refused_unchanged(
        lambda m: lib.ae_apply_update(m._h, 1, False, ADAM + (0.0,)), TypeError)
    cases["ae_apply_update[adam str]"] = refused_unchanged(
        lambda m: lib.ae_apply_update(m._h, 1, False, ("1e-3",) + ADAM[1:]), TypeError)
    cases["ae_apply_update[adam None]"] = refused_unchanged(lambda m: lib.ae_apply_update(m._h, 1, False, None),
                                                            TypeError)
    cases["ae_apply_update[handle=diffusion]"] = lambda: expect_raise(
        lambda: lib.ae_apply_update(fc.dm(), 1, False, ADAM), TypeError)
    cases["ae_apply_update[public mode]"] = refused_unchanged(lambda m: m.apply_update("step3"), ValueError, "mode")
    cases["ae_trained_slice[public mode]"] = refused_unchanged(lambda m: m.trained_slice("STEP1"), ValueError, "mode")
    for bad, v in (("nan", math.nan), ("inf", math.inf), ("neg", -1.0), ("1e40", 1e40)):
        for k, key in enumerate(("lr", "beta1", "beta2", "eps", "weight_decay")):
            if bad == "neg" and key in ("beta1", "beta2"):
                v2 = -0.5
            else:
                v2 = v
            adam = list(ADAM)
            adam[k] = v2
            for mode in (1, 3):
                cases[f"ae_apply_update[{key}={bad},mode={mode}]"] = refused_unchanged(
                    lambda m, a=tuple(adam), mode=mode: lib.ae_apply_update(m._h, mode, False, a), ValueError, key[:4])
    cases["ae_apply_update[beta1=1]"] = refused_unchanged(
        lambda m: lib.ae_apply_update(m._h, 1, False, (1e-3, 1.0, 0.999, 1e-8, 0.0)), ValueError, "betas")

    def nan_grad(mode, freeze):
        """A NaN in a trained group's gradient comes out in the parameters (or is refused)."""
        def run():
            m = new()
            sl = m.trained_slice(_mode_name(mode), freeze)
            g = np.zeros(m.flat("grad").size, np.float32)
            g[sl.stop - 1] = np.nan
            m.set_tensor(None, g, kind="grad")
            try:
                lib.ae_apply_update(m._h, mode, freeze, ADAM)
            except fc.CLEAN:
                return "clean"
            if np.isfinite(m.flat("param")[sl.stop - 1]):
                raise Wrong("NaN gradient, finite parameter after the step")
            return "ok"
        return run
    cases["ae_apply_update[nan grad step1]"] = nan_grad(1, False)
    cases["ae_apply_update[nan grad step2 frozen]"] = nan_grad(2, True)

    def before_any_backward(mode, freeze):
        """apply_update on a fresh model (zero gradients): AdamW's step is the decay alone,
        p (1 - lr wd), on the trained groups; the other groups and the buffers stay."""
        def run():
            m = new()
            p0, b0 = m.flat("param").copy(), m.flat("buf").copy()
            lr, wd = 1e-2, 0.5
            lib.ae_apply_update(m._h, mode, freeze, (lr, 0.9, 0.999, 1e-8, wd))
            p = m.flat("param")
            trained = np.zeros(p.size, bool)
            for g, steps in m.optimizer_steps().items():
                if steps:
                    trained[m.group_slice(g)] = True
            want = np.where(trained, p0 - np.float32(lr * wd) * p0, p0)
            if not trained.any() or not np.allclose(p, want, rtol=1e-6, atol=1e-9):
                raise Wrong("a zero-gradient AdamW step is not the weight decay alone")
            if not np.array_equal(m.flat("buf"), b0) or np.any(m.flat("m")) or np.any(m.flat("v")):
                raise Wrong("a zero-gradient step changed buffers or moments")
            return "ok"
        return run
    for mode in MODE_NUMS:
        cases[f"ae_apply_update[fresh model, mode={mode}]"] = before_any_backward(mode, False)
    cases["ae_apply_update[fresh model, step2 frozen]"] = before_any_backward(2, True)

    # ---- ae_trained_range: right answers -----------------------------------------------------------
    def range_ok(mode, freeze):
        def run():
            m = fc.ae_model()
            off, n = lib.ae_trained_range(m._h, mode, freeze)
            total = m.flat("param").size
            if not (0 <= off and n > 0 and off + n <= total):
                raise Wrong(f"range ({off}, {n}) outside the buffer of {total}")
            return "ok"
        return run
    for mode in MODE_NUMS:
        for freeze in (False, True):
            cases[f"ae_trained_range[mode={mode},freeze={freeze}]"] = range_ok(mode, freeze)

    # ---- ae_set_steps ----------------------------------------------------------------------------
    for label, d, exc in (("negative", {"encoder": -1}, ValueError), ("bogus group", {"bogus": 1}, ValueError),
                          ("2**70", {"encoder": 2**70}, OverflowError), ("float", {"encoder": 1.5}, TypeError),
                          ("int key", {0: 1}, ValueError), ("list", [("encoder", 1)], TypeError),
                          ("NUL key", {"encoder\0x": 1}, ValueError)):
        cases[f"ae_set_steps[{label}]"] = refused_unchanged(lambda m, d=d: lib.ae_set_steps(m._h, d), exc,
                                                            steps=False)

    def config_nul():
        cfg = dict(lib.ae_config(fc.ae()))
        cfg["nt\0junk"] = cfg.pop("nt")
        return expect_raise(lambda: lib.ae_create(cfg, 0, "cpu"), ValueError, "NUL")
    cases["ae_create[config key NUL]"] = config_nul

    # ---- calls in the wrong order ------------------------------------------------------------------
    vel, seis = fc.R(2, 1, 70, 70), fc.R(2, 1, 16, 8)
    dz = fc.R(2, 8)
    order = {
        "encode_backward on a fresh model": lambda m: None,
        "encode_backward after an eval encode": lambda m: m.encode(vel),
        "encode_backward after init": lambda m: (m.encode(vel, training=True), m.init(3)),
        "encode_backward after a batch-1 eval encode": lambda m: (m.encode(vel, training=True), m.encode(vel[:1])),
        "encode_backward after step2 frozen": lambda m: m.forward_backward(vel, seis, mode="step2", freeze=True),
        "encode_backward after vel_after": lambda m: m.forward_backward(vel, mode="vel_after"),
    }
    for label, before in order.items():
        def run(before=before):
            m = new()
            before(m)
            g0 = m.flat("grad").copy()
            r = expect_raise(lambda: lib.ae_encode_backward(m._h, dz, vel), ValueError, "training-mode encode")
            if not np.array_equal(m.flat("grad"), g0):
                raise Wrong("a refused encode_backward changed the gradients")
            return r
        cases[f"order:{label}"] = run

    def after_step1():
        """forward_backward(step1) ran E in training mode on this batch: encode_backward is valid there
        and adds exactly what a fresh encode + encode_backward adds."""
        m, ref = new(), new()
        m.forward_backward(vel, mode="step1")
        m.zero_grad()
        lib.ae_encode_backward(m._h, dz, vel)
        ref.zero_grad()
        ref.encode(vel, training=True)
        lib.ae_encode_backward(ref._h, dz, vel)
        if not np.allclose(m.flat("grad"), ref.flat("grad"), rtol=1e-5, atol=1e-7):
            raise Wrong("encode_backward after forward_backward differs from after encode")
        return "ok"
    cases["order:encode_backward after step1 forward_backward"] = after_step1

    def freed():
        m = new()
        m.free()
        return expect_raise(lambda: m.get_tensor(W0), RuntimeError, "freed")
    cases["order:get_tensor after free"] = freed

    def freed_apply():
        m = new()
        m.free()
        return expect_raise(lambda: m.apply_update("step1"), RuntimeError, "freed")
    cases["order:apply_update after free"] = freed_apply
    return cases


def _mode_name(num):
    return {1: "step1", 2: "step2", 3: "wo_opt", 4: "seis_first", 5: "vel_after"}[num]


def _offset(m, name, kind):
    spec = m._spec["buffers" if kind == "buf" else "params"]
    for row in spec:  # params: (name, shape, offset, group); buffers: (name, shape, offset)
        if row[0] == name:
            return int(row[2])
    raise KeyError(name)
