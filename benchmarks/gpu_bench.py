"""ubdiff on the GPU against PyTorch on the same card, side by side in one run (issue 10 "Speed").

    python benchmarks/gpu_bench.py [--parts all | tf32,fwdmod,invnet,step1,step2,diff_train,sample16,sample500]
                                   [--budget 60] [--total 420] [--math fp32] [--json out.json]

Parts (paper configuration; the issue's batch sizes):
  tf32        the seismic decoder's 640 -> 350,000 product at batch 16 through the backend's math modes:
              measured relative error of fp32 / tf32 against float64, and time per product
  fwdmod      forward modelling, 16 maps (5 shots, 1000 steps): maps/s; PyTorch: the torch.roll stencil
  invnet      InversionNet training step, batch 64 (L1 + MSE, AdamW): samples/s
  step1       autoencoder step 1 (E + heads + D_v, AdamW), batch 64: samples/s
  step2       autoencoder step 2, F = 0 (both decoders, both losses), batch 64: samples/s
  diff_train  latent diffusion step, 16 x 2 accumulation, clip 1, Adam, EMA: latents/s
  sample16    256-step DDPM sampling + decode of 16 pairs: seconds
  sample500   the same for 500 pairs: seconds
A part whose ubdiff model cannot run on the GPU yet (its device="cuda" raises) shows "n/a" with the
reason, and PyTorch alone is timed. Every part is time-boxed: after one warm-up call it repeats until
--budget seconds are spent (at least one timed call, at most 10) and reports the median; parts are
skipped once --total seconds have passed, so the whole run has a known ceiling
(about --total + the slowest part's budget + model creation).

PyTorch runs eager with its defaults (fp32 matmuls, TF32 convolutions through cuDNN): the configuration
of the issue's "eager fp32" numbers. Inputs: PyTorch's already on the GPU; ubdiff's are host arrays
staged once per call (one bus crossing per batch, as in training from host data). The last lines
printed are the table, with the issue's targets.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ubdiff  # noqa: E402
from ubdiff._native import lib  # noqa: E402

try:
    import torch
    import torch_models as tm
except ImportError:
    torch = None

CONSTANTS = dict(data_min=-26.0, data_max=52.0, label_min=1500.0, label_max=4500.0)
# the issue's numbers, one H100 80GB: PyTorch eager fp32, the best PyTorch (compile + graphs + bf16), target
ISSUE = {"step1": (4523, None, ">= 9000"), "step2": (2645, 2844, ">= 8000"), "diff_train": (404, 543, ">= 2000"),
         "sample16": (3.00, 0.42, "<= 0.15"), "sample500": (3.65, 2.03, "<= 1.0"), "invnet": (1575, None, ">= 3000"),
         "fwdmod": (None, 22, ">= 300")}
PARTS = ["tf32", "fwdmod", "invnet", "step1", "step2", "diff_train", "sample16", "sample500"]


def sync():
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, budget, max_repeat=10):
    """Median seconds of fn() (synchronised) after one warm-up, repeating until `budget` s are spent."""
    fn()
    sync()
    ts, start = [], time.perf_counter()
    while len(ts) < max_repeat and (not ts or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), len(ts)


def ubd_on_gpu(make):
    """(model, None) or (None, reason) when the model cannot be created on the GPU yet."""
    try:
        return make(), None
    except (NotImplementedError, TypeError, RuntimeError, ValueError) as e:
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:90]}"


class Result:
    def __init__(self, part, unit, count=1, seconds=False):
        self.part, self.unit, self.count, self.seconds = part, unit, count, seconds
        self.ub = self.pt = None
        self.note = ""

    def rate(self, t):
        return t if self.seconds else self.count / t

    def row(self):
        f = (lambda v: "n/a" if v is None else (f"{v:.3f}" if self.seconds else f"{v:,.0f}"))
        ratio = ""
        if self.ub is not None and self.pt is not None:
            ratio = f"{(self.pt / self.ub if self.seconds else self.ub / self.pt):.2f}x"
        eager, best, target = ISSUE.get(self.part, (None, None, ""))
        ref = lambda v: "" if v is None else (f"{v:.2f}" if self.seconds else f"{v:,}")  # noqa: E731
        return [self.part, self.unit, f(self.ub), f(self.pt), ratio, ref(eager), ref(best), target, self.note]


# ---- parts ---------------------------------------------------------------------------------------
def part_tf32(a):
    r = Result("tf32", "err fp32 / tf32")
    rng = np.random.default_rng(0)
    x = np.where((h := rng.normal(size=(16, 640))) > 0, h, 0.2 * h).astype(np.float32)
    w = (rng.uniform(-1, 1, (350000, 640)) / math.sqrt(640)).astype(np.float32)
    exact = x.astype(np.float64) @ w.T.astype(np.float64)
    out, errs, times = np.empty((16, 350000), np.float32), {}, {}
    for m in ("fp32", "tf32"):
        lib.linear_forward_on(out, x, w, a.device, m)
        errs[m] = np.linalg.norm(out - exact) / np.linalg.norm(exact)
        times[m], _ = timed(lambda: lib.linear_forward_on(out, x, w, a.device, m), a.budget / 4, 3)
    r.note = (f"relative error fp32 {errs['fp32']:.1e}, tf32 {errs['tf32']:.1e} (emulated: 3.1e-4); "
              f"per call incl. copies: fp32 {times['fp32']*1e3:.0f} ms, tf32 {times['tf32']*1e3:.0f} ms")
    return r


def part_fwdmod(a):
    from ubdiff import physics
    from ubdiff.data import generate_velocity
    N = 2 if a.quick else 16
    r = Result("fwdmod", "maps/s", N)
    vel = generate_velocity("flatvel-a", N, seed=3).astype(np.float32)
    rec = physics.forward_model(vel, device=a.device)
    t, _ = timed(lambda: physics.forward_model(vel, device=a.device), a.budget / 2)
    r.ub = r.rate(t)
    if torch is not None:
        with torch.device("cuda"), torch.no_grad():
            pt = tm.forward_model(vel)
            t, _ = timed(lambda: tm.forward_model(vel), a.budget / 2, 3)
        r.pt = r.rate(t)
        peak = np.abs(pt.cpu().numpy()).max()
        r.note = f"max |ubdiff - torch| / peak {np.abs(rec - pt.cpu().numpy()).max() / peak:.1e}"
    return r


def part_invnet(a):
    from ubdiff.models import InversionNet
    B = 2 if a.quick else 64
    r = Result("invnet", "samples/s", B)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((B, 5, 1000, 70), dtype=np.float32)
    v = np.tanh(rng.standard_normal((B, 1, 70, 70), dtype=np.float32))
    m, why = ubd_on_gpu(lambda: InversionNet("paper", seed=0, max_batch=B, device=a.device))
    if m is not None:
        t, _ = timed(lambda: m.train_step(x, v), a.budget / 2)
        r.ub = r.rate(t)
    else:
        r.note = why
    if torch is not None:
        tn = tm.InversionNet().cuda()
        opt = torch.optim.AdamW(tn.parameters(), lr=1e-4, weight_decay=1e-4)
        tx, tv = torch.from_numpy(x).cuda(), torch.from_numpy(v).cuda()

        def step():
            opt.zero_grad(set_to_none=True)
            tm.modality_loss(tn(tx), tv).backward()
            opt.step()
        t, _ = timed(step, a.budget / 2)
        r.pt = r.rate(t)
    return r


def _torch_ae_step(t_ae, tv, ts, mode):
    m = t_ae
    groups = [m.encoder, m.fc_v, m.batch_norm_v, m.decoder_v]
    if mode == "step2":
        groups += [m.fc_s, m.batch_norm_s, m.decoder_s]
    opt = torch.optim.AdamW([p for g in groups for p in g.parameters()], lr=1e-4, weight_decay=1e-4)

    def step():
        m.train()
        opt.zero_grad(set_to_none=True)
        z = m.encoder(tv)
        if mode == "step1":
            m.head_s(z)
            v, _ = m.decode(z, seismic=False)
            loss = tm.modality_loss(v, tv)
        else:
            v, s = m.decode(z)
            loss = tm.modality_loss(v, tv) + tm.modality_loss(s, ts)
        loss.backward()
        opt.step()
    return step


def part_ae(a, mode):
    from ubdiff.models import CoLatentAutoencoder
    B = 2 if a.quick else 64
    r = Result(mode, "samples/s", B)
    rng = np.random.default_rng(1)
    vel = np.tanh(rng.standard_normal((B, 1, 70, 70))).astype(np.float32)
    seis = np.tanh(rng.standard_normal((B, 5, 1000, 70))).astype(np.float32) if mode == "step2" else None
    ae, why = ubd_on_gpu(lambda: CoLatentAutoencoder("paper", seed=0, device=a.device, max_batch=B))
    if ae is not None:
        f = (lambda: ae.train_step(vel, mode="step1")) if mode == "step1" else \
            (lambda: ae.train_step(vel, seis, mode="step2", freeze=False))
        t, _ = timed(f, a.budget / 2)
        r.ub = r.rate(t)
    else:
        r.note = why
    if torch is not None:
        t_ae = tm.CoLatentAE().cuda()
        tv = torch.from_numpy(vel).cuda()
        ts = None if seis is None else torch.from_numpy(seis).cuda()
        t, _ = timed(_torch_ae_step(t_ae, tv, ts, mode), a.budget / 2)
        r.pt = r.rate(t)
    return r


def _schedule():
    from ubdiff.models import LatentDiffusion
    return LatentDiffusion("paper", seed=0, max_batch=1).schedule


def _torch_vd():
    vd = tm.VDiffusion(tm.UNet1D().cuda(), _schedule())
    vd.s = {k: v.cuda() for k, v in vd.s.items()}
    return vd


def part_diff_train(a):
    from ubdiff.models import LatentDiffusion
    B, accum = (2 if a.quick else 16), 2
    r = Result("diff_train", "latents/s", B * accum)
    z0 = np.random.default_rng(4).uniform(-1, 1, (B * accum, 1, 128)).astype(np.float32)
    d, why = ubd_on_gpu(lambda: LatentDiffusion("paper", seed=0, max_batch=B, device=a.device))
    if d is not None:
        t, _ = timed(lambda: d.train_step(z0, accum=accum), a.budget / 2)
        r.ub = r.rate(t)
    else:
        r.note = why
    if torch is not None:
        vd = _torch_vd()
        u = vd.model
        opt = torch.optim.Adam(u.parameters(), lr=8e-5, betas=(0.9, 0.99))
        ema = [p.detach().clone() for p in u.parameters()]
        tz = torch.from_numpy(z0).cuda()
        steps = [0]

        def step():
            for i in range(accum):
                z = tz[i * B:(i + 1) * B]
                t = torch.randint(0, 256, (B,), device="cuda")
                (vd.loss(z, t, torch.randn_like(z)) / accum).backward()
            torch.nn.utils.clip_grad_norm_(u.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if steps[0] % 10 == 0:
                with torch.no_grad():
                    torch._foreach_lerp_(ema, [p.detach() for p in u.parameters()], 1 - 0.995)
            steps[0] += 1
        t, _ = timed(step, a.budget / 2)
        r.pt = r.rate(t)
    return r


def part_sample(a, n):
    r = Result(f"sample{n}", "s", n, seconds=True)

    def make():
        u = ubdiff.UBDiff("paper", device=a.device, seed=0, max_batch=n, diffusion_max_batch=n)
        u.set_constants(CONSTANTS)
        return u
    u, why = ubd_on_gpu(make)
    if u is not None:
        t, _ = timed(lambda: u.sample(n, seed=0), a.budget / 2, 3)
        r.ub = r.rate(t)
    else:
        r.note = why
    if torch is not None:
        vd = _torch_vd()
        t_ae = tm.CoLatentAE().cuda().eval()

        @torch.no_grad()
        def pt():
            with torch.device("cuda"):
                z = vd.sample(n)
            v, s = t_ae.decode(z[:, 0])
            return v.cpu().numpy(), s.cpu().numpy()  # as ubdiff: the pairs end on the host
        t, _ = timed(pt, a.budget / 2, 3)
        r.pt = r.rate(t)
    return r


RUN = {"tf32": part_tf32, "fwdmod": part_fwdmod, "invnet": part_invnet,
       "step1": lambda a: part_ae(a, "step1"), "step2": lambda a: part_ae(a, "step2"),
       "diff_train": part_diff_train, "sample16": lambda a: part_sample(a, 16),
       "sample500": lambda a: part_sample(a, 500)}


def table(rows, headers):
    w = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(cells)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (x + 2) for x in w) + "|"] + [line(r) for r in rows])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="all")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds of timed calls per part (both sides)")
    ap.add_argument("--total", type=float, default=420.0, help="no part starts after this many seconds")
    ap.add_argument("--math", default="fp32", choices=ubdiff.MATH_MODES, help="ubdiff's math mode")
    ap.add_argument("--json")
    ap.add_argument("--device", default="cuda", help="ubdiff's device (cpu: a smoke run of the script)")
    ap.add_argument("--quick", action="store_true", help="batch 2 everywhere (smoke runs)")
    a = ap.parse_args(argv)
    parts = PARTS if a.parts == "all" else a.parts.split(",")
    for p in parts:
        if p not in RUN:
            ap.error(f"unknown part {p!r}; choose from {','.join(PARTS)}")
    if a.device == "cuda" and ubdiff.gpu_count() == 0:
        print("gpu_bench: no CUDA GPU visible to ubdiff (cuda_compiled=%s); nothing to measure" % ubdiff.cuda_compiled())
        return 0
    ubdiff.set_math_mode(a.math)
    card = "cpu" if a.device == "cpu" else torch.cuda.get_device_name() if torch is not None and torch.cuda.is_available() else "?"
    print(f"card: {card}; ubdiff {ubdiff.__version__} math {a.math}; "
          f"torch {torch.__version__ if torch else 'absent'}"
          + (f" (cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, "
             f"matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32})" if torch else ""), flush=True)
    results, start = [], time.perf_counter()
    for p in parts:
        if time.perf_counter() - start > a.total:
            r = Result(p, "")
            r.note = f"skipped: --total {a.total:.0f} s spent"
            results.append(r)
            continue
        t0 = time.perf_counter()
        try:
            r = RUN[p](a)
        except Exception as e:  # one part's failure must not lose the others' numbers
            traceback.print_exc()
            r = Result(p, "")
            r.note = f"FAILED {type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}"
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
        print(f"[{p}] {time.perf_counter() - t0:.0f} s: {r.row()}", flush=True)
        results.append(r)
    headers = ["part", "unit", "ubdiff", "torch here", "ubdiff/torch", "issue eager", "issue best", "target", "note"]
    rows = [r.row() for r in results]
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"card": card, "math": a.math, "headers": headers, "rows": rows}, f, indent=1)
    print(f"\n## GPU benchmark ({card}, ubdiff math {a.math}; {time.perf_counter() - start:.0f} s)")
    print(table(rows, headers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
