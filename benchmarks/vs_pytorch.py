"""ubdiff against PyTorch modules of the same architecture, side by side.

    python benchmarks/vs_pytorch.py [--threads 1,2,default] [--load idle,busy] [--repeat 5]
                                    [--stages all | step1,step2,diff_train,unet_fwd,decode,invnet,fwdmod,generate]
                                    [--json out.json]

PyTorch is optional: without it the script says so and exits 0. The PyTorch
side is benchmarks/torch_models.py (written from shared/specs/paper_config.md);
both sides hold the same weights (ubdiff's parameters copied in by name).

Stages (paper configuration):
  step1       autoencoder step 1 (E + heads + D_v, velocity loss, AdamW), batch 8
  step2       autoencoder step 2, F = 0 (everything, both losses, AdamW), batch 8
  diff_train  latent diffusion training step, batch 16 x accumulation 2, clip 1.0, Adam, EMA every 10
  unet_fwd    U-Net forward at batch 16 (= one sampling step)
  decode      decode 16 latents into (velocity, seismic) pairs, eval mode
  invnet      InversionNet training step, batch 4 (L1 + MSE, AdamW)
  fwdmod      forward modelling of 2 maps (5 shots, 1000 steps) vs a torch.roll stencil
  generate    UBDiff.generate (256 DDPM steps + decode + write .npy) vs DDPM sample + decoders + np.save

Method: for every (load, threads) condition both sides run the same stage in
alternation (A B B A ...) after one warm-up each; medians. "busy" starts two
bounded busy-loop processes (they end by themselves after --load-limit s and
are stopped after the condition). Threads: ubdiff.set_num_threads(n) and
torch.set_num_threads(n); "default" is ubdiff's import-time default
(adaptive up to the cores, or OMP_NUM_THREADS when set) and "adaptive"
ubdiff.set_num_threads_adaptive(), each against torch at the cores.

Correctness (once, before timing, same weights and inputs): outputs, losses and
parameter gradients of both sides agree within the tolerance printed in the
table, so a fast but wrong kernel cannot pass; a failed check is marked FAIL.

Roofline: "GFLOP/s" counts the GEMM/convolution FLOPs of a call (PyTorch's
FlopCounterMode on the reference module: forward + backward for training)
over its median time; "/sgemm" divides by the best 1024^3 sgemm rate through
ubdiff's core at the same thread count, measured idle at the start of the run.
"""
import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import table  # noqa: E402

import ubdiff  # noqa: E402  (before torch: ubdiff's OpenMP settings are read when its runtime starts)
from ubdiff._native import lib  # noqa: E402

try:
    import torch
    import torch_models as tm
except ImportError:  # PyTorch is no dependency of ubdiff
    torch = None

# the stages' classes are defined whether or not torch is there, so main() can say it is missing
no_grad = torch.no_grad() if torch is not None else (lambda f: f)

STAGES = ["step1", "step2", "diff_train", "unet_fwd", "decode", "invnet", "fwdmod", "generate"]
CONSTANTS = dict(data_min=-26.0, data_max=52.0, label_min=1500.0, label_max=4500.0)


# ---- helpers ------------------------------------------------------------------------------
def rel_err(a, b) -> float:
    """max |a - b| / max |b|: one number per tensor, scale-free."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def l2_err(a, b) -> float:
    """||a - b|| / ||b|| (gradients: a few large entries dominate, as they do in training)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def tnp(t):
    return t.detach().cpu().numpy()


def flops_of(fn) -> float:
    """GEMM + convolution FLOPs of one call of a PyTorch function."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def sgemm_rate(reps=5) -> float:
    """Best 1024^3 sgemm GFLOP/s through ubdiff's core (linear layer = one sgemm)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1024, 1024), dtype=np.float32)
    w = rng.standard_normal((1024, 1024), dtype=np.float32)
    out = np.empty((1024, 1024), np.float32)
    lib.linear_forward(out, x, w, None)
    best = 1e9
    for _ in range(reps):
        t0 = time.perf_counter()
        lib.linear_forward(out, x, w, None)
        best = min(best, time.perf_counter() - t0)
    return 2 * 1024 ** 3 / best / 1e9


@contextlib.contextmanager
def busy_load(n: int, limit_s: float):
    """n busy-loop processes, each ending by itself after limit_s; stopped on exit."""
    code = f"import time\nend = time.time() + {float(limit_s)}\nwhile time.time() < end: pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]
    time.sleep(0.5)
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


def set_threads(spec):
    if spec == "default":  # ubdiff's import-time default (adaptive, or OMP_NUM_THREADS); torch: the cores
        ubdiff._set_default_threads()
        torch.set_num_threads(ubdiff.available_cores())
    elif spec == "adaptive":  # ubdiff.set_num_threads_adaptive (opt-in); torch: the cores
        ubdiff.set_num_threads_adaptive()
        torch.set_num_threads(ubdiff.available_cores())
    else:
        ubdiff.set_num_threads(int(spec))
        torch.set_num_threads(int(spec))


# ---- stages ------------------------------------------------------------------------------
class Stage:
    """One benchmark stage: ub() and pt() run one call each; count items per call.
    check() returns [(what, error, tolerance)] (empty: checked by other stages)."""
    unit = "items/s"
    count = 1
    flops = float("nan")

    def check(self) -> list:
        return []


class Models:
    """The paper models of both sides, created once and shared by the stages."""

    def __init__(self, stages):
        self.ubd = ubdiff.UBDiff("paper", seed=0, max_batch=16, diffusion_max_batch=16)
        self.ubd.set_constants(CONSTANTS)
        self.ae, self.diff = self.ubd.autoencoder, self.ubd.diffusion
        self.t_ae = self.t_unet = None
        if set(stages) & {"step1", "step2", "decode", "generate"}:
            self.t_ae = tm.CoLatentAE()
            tm.load_from(self.t_ae, {**self.ae.named_parameters(), **self.ae.named_buffers()})
        if set(stages) & {"diff_train", "unet_fwd", "generate"}:
            self.t_unet = tm.UNet1D()
            tm.load_from(self.t_unet, self.diff.named("param"))
            self.t_vd = tm.VDiffusion(self.t_unet, self.diff.schedule)


def _ae_grads_err(ae, t_ae, names):
    gt = dict(t_ae.named_parameters())
    return max(l2_err(ae.parameter(n, "grad"), tnp(gt[n].grad)) for n in names)


class AEStep(Stage):
    unit = "samples/s"

    def __init__(self, M, mode, B=8):
        self.M, self.mode, self.count = M, mode, B
        rng = np.random.default_rng(1)
        self.vel = np.tanh(rng.standard_normal((B, 1, 70, 70))).astype(np.float32)
        self.seis = np.tanh(rng.standard_normal((B, 5, 1000, 70))).astype(np.float32) if mode == "step2" else None
        self.tv = torch.from_numpy(self.vel)
        self.ts = None if self.seis is None else torch.from_numpy(self.seis)
        m = M.t_ae
        groups = [m.encoder, m.fc_v, m.batch_norm_v, m.decoder_v]
        if mode == "step2":
            groups += [m.fc_s, m.batch_norm_s, m.decoder_s]
        params = [p for g in groups for p in g.parameters()]
        self.opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-4)
        self.flops = flops_of(self._pt_loss_backward)
        m.zero_grad(set_to_none=True)

    def _pt_loss_backward(self):
        m = self.M.t_ae
        m.train()
        z = m.encoder(self.tv)
        if self.mode == "step1":
            m.head_s(z)  # the seismic head runs for its BatchNorm statistics (paper_config.md)
            v, _ = m.decode(z, seismic=False)
            loss = tm.modality_loss(v, self.tv)
        else:
            v, s = m.decode(z)
            loss = tm.modality_loss(v, self.tv) + tm.modality_loss(s, self.ts)
        loss.backward()
        return loss

    def ub(self):
        if self.mode == "step1":
            self.M.ae.train_step(self.vel, mode="step1")
        else:
            self.M.ae.train_step(self.vel, self.seis, mode="step2", freeze=False)

    def pt(self):
        self.opt.zero_grad(set_to_none=True)
        self._pt_loss_backward()
        self.opt.step()

    def check(self):
        # Both sides from the same weights and BatchNorm buffers; training-mode
        # BatchNorm over a batch of 8. Losses agree to float32 rounding (tolerance
        # 1e-4). The gradients at this random initialisation are ill-conditioned
        # (BatchNorm over 2x2 maps of 8 samples, saturated tanh): against a float64
        # PyTorch run, ubdiff's are off by ~0.8 % and float32 PyTorch's by ~1.3 %
        # (L2, every tensor; measured), so they must agree within 5e-2; a wrong
        # kernel gives O(1).
        ae, m = self.M.ae, self.M.t_ae
        state = {**ae.named_parameters(), **ae.named_buffers()}
        tm.load_from(m, state)
        m.zero_grad(set_to_none=True)
        ae.flat("grad")[:] = 0
        if self.mode == "step1":
            losses = ae.forward_backward(self.vel, mode="step1")
        else:
            losses = ae.forward_backward(self.vel, self.seis, mode="step2", freeze=False)
        lt = float(self._pt_loss_backward().detach())
        names = ["encoder.convBlock1_1.layers.0.weight", "encoder.convBlock5_1.layers.0.weight", "fc_v.weight",
                 "decoder_v.deconvBlock3_1.layers.0.weight", "decoder_v.deconvBlock6.layers.0.weight"]
        if self.mode == "step2":
            names += ["decoder_s.mlp.weight", "decoder_s.decoder.blocks.0.attn.qkv.weight", "fc_s.weight"]
        out = [("loss", abs(losses["total"] - lt) / abs(lt), 1e-4), ("gradients", _ae_grads_err(ae, m, names), 5e-2)]
        m.zero_grad(set_to_none=True)
        tm.load_from(m, state)  # the BatchNorm buffers as ubdiff's again
        return out


class Decode(Stage):
    unit = "pairs/s"

    def __init__(self, M, B=16):
        self.M, self.count = M, B
        self.z = np.random.default_rng(2).uniform(-1, 1, (B, 128)).astype(np.float32)
        self.tz = torch.from_numpy(self.z)
        self.flops = flops_of(self.pt)

    def ub(self):
        return self.M.ae.decode(self.z)

    @no_grad
    def pt(self):
        self.M.t_ae.eval()
        return self.M.t_ae.decode(self.tz)

    def check(self):
        # eval mode, same weights and running statistics: float32 rounding only
        # (measured ~1e-6 of the largest value).
        tm.load_from(self.M.t_ae, {**self.M.ae.named_parameters(), **self.M.ae.named_buffers()})
        (v, s), (tv, ts) = self.ub(), self.pt()
        return [("velocity", rel_err(v, tnp(tv)), 1e-4), ("seismic", rel_err(s, tnp(ts)), 1e-4)]


class UNetFwd(Stage):
    unit = "steps/s"

    def __init__(self, M, B=16):
        self.M = M
        rng = np.random.default_rng(3)
        self.x = rng.standard_normal((B, 1, 128)).astype(np.float32)
        self.t = rng.integers(0, 256, B)
        self.tx, self.tt = torch.from_numpy(self.x), torch.from_numpy(self.t)
        self.flops = flops_of(self.pt)

    def ub(self):
        return self.M.diff.forward(self.x, self.t)

    @no_grad
    def pt(self):
        return self.M.t_unet(self.tx, self.tt)

    def check(self):  # float32 rounding only (measured ~1e-6)
        return [("output", rel_err(self.ub(), tnp(self.pt())), 1e-4)]


class DiffTrain(Stage):
    unit = "latents/s"

    def __init__(self, M, B=16, accum=2):
        self.M, self.B, self.accum, self.count = M, B, accum, B * accum
        self.z0 = np.random.default_rng(4).uniform(-1, 1, (B * accum, 1, 128)).astype(np.float32)
        self.tz = torch.from_numpy(self.z0)
        u = M.t_unet
        self.opt = torch.optim.Adam(u.parameters(), lr=8e-5, betas=(0.9, 0.99))
        self.ema = [p.detach().clone() for p in u.parameters()]
        self.steps = 0
        self.gen = torch.Generator().manual_seed(0)
        self.flops = flops_of(self._micro_batches)
        u.zero_grad(set_to_none=True)

    def _micro_batches(self):
        for i in range(self.accum):
            z = self.tz[i * self.B:(i + 1) * self.B]
            t = torch.randint(0, 256, (self.B,), generator=self.gen)
            noise = torch.randn(z.shape, generator=self.gen)
            (self.M.t_vd.loss(z, t, noise) / self.accum).backward()

    def ub(self):
        self.M.diff.train_step(self.z0, accum=self.accum)

    def pt(self):
        u = self.M.t_unet
        self._micro_batches()
        torch.nn.utils.clip_grad_norm_(u.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.steps % 10 == 0:
            with torch.no_grad():
                torch._foreach_lerp_(self.ema, [p.detach() for p in u.parameters()], 1 - 0.995)
        self.steps += 1

    def check(self):
        # the same t and noise on both sides: loss and gradients agree to float32
        # rounding (measured ~1e-7 / ~1e-6); tolerances 1e-4 / 1e-3.
        d, u = self.M.diff, self.M.t_unet
        tm.load_from(u, d.named("param"))
        rng = np.random.default_rng(5)
        t = rng.integers(0, 256, self.B)
        noise = rng.standard_normal((self.B, 1, 128)).astype(np.float32)
        z = self.z0[:self.B]
        d.zero_grad()
        val, _ = d.loss(z, t, noise, grad_scale=1.0)
        u.zero_grad(set_to_none=True)
        lt = self.M.t_vd.loss(torch.from_numpy(z), torch.from_numpy(t), torch.from_numpy(noise))
        lt.backward()
        g = d.grads
        gt = dict(u.named_parameters())
        names = ["init_conv.weight", "downs.0.0.block1.proj.weight", "mid_attn.fn.fn.to_qkv.weight",
                 "ups.0.2.fn.fn.to_out.0.weight", "final_conv.weight", "time_mlp.1.weight"]
        lt = float(lt.detach())
        out = [("loss", abs(val - lt) / abs(lt), 1e-4),
               ("gradients", max(l2_err(g[n], tnp(gt[n].grad)) for n in names), 1e-3)]
        d.zero_grad()
        u.zero_grad(set_to_none=True)
        return out


class InvNetTrain(Stage):
    unit = "samples/s"

    def __init__(self, B=4):
        from ubdiff.models import InversionNet
        self.count = B
        self.m = InversionNet("paper", seed=0, max_batch=B)
        self.t = tm.InversionNet()
        tm.load_from(self.t, {**self.m.parameters(), **self.m.buffers()})
        rng = np.random.default_rng(6)
        self.x = rng.standard_normal((B, 5, 1000, 70), dtype=np.float32)
        self.v = np.tanh(rng.standard_normal((B, 1, 70, 70), dtype=np.float32))
        self.tx, self.tv = torch.from_numpy(self.x), torch.from_numpy(self.v)
        self.opt = torch.optim.AdamW(self.t.parameters(), lr=1e-4, weight_decay=1e-4)
        self.flops = flops_of(lambda: tm.modality_loss(self.t(self.tx), self.tv).backward())
        self.t.zero_grad(set_to_none=True)

    def ub(self):
        self.m.train_step(self.x, self.v)

    def pt(self):
        self.t.train()
        self.opt.zero_grad(set_to_none=True)
        tm.modality_loss(self.t(self.tx), self.tv).backward()
        self.opt.step()

    def check(self):
        # training-mode forward and the gradients of sum(out * dout) through 25
        # layers with batch-4 BatchNorm: float32 rounding, amplified as in the
        # autoencoder (measured ~4e-4 / ~4e-3); tolerances 1e-3 / 5e-2.
        tm.load_from(self.t, {**self.m.parameters(), **self.m.buffers()})
        dout = np.random.default_rng(7).standard_normal((self.count, 1, 70, 70)).astype(np.float32)
        self.m.zero_grad()
        out = self.m.forward(self.x, train=True)
        self.m.backward(dout, self.x)
        self.t.train()
        self.t.zero_grad(set_to_none=True)
        tout = self.t(self.tx)
        tout.backward(torch.from_numpy(dout))
        g, gt = self.m.gradients(), dict(self.t.named_parameters())
        names = ["convblock1.layers.0.weight", "convblock8.layers.0.weight", "deconv1_1.layers.0.weight",
                 "deconv6.layers.0.weight"]
        res = [("output", rel_err(out, tnp(tout)), 1e-3),
               ("gradients", max(l2_err(g[n], tnp(gt[n].grad)) for n in names), 5e-2)]
        self.t.zero_grad(set_to_none=True)
        return res


class FwdModel(Stage):
    unit = "maps/s"

    def __init__(self, N=2):
        from ubdiff.data import families
        self.count = N
        self.vel = families.generate_velocity("flatvel-a", N, seed=3).astype(np.float32)

    def ub(self):
        from ubdiff import physics
        return physics.forward_model(self.vel)

    @no_grad
    def pt(self):
        return tm.forward_model(self.vel)

    def check(self):
        # 1000 float32 time steps of the same scheme in another summation order:
        # measured ~5e-6 of the peak amplitude; tolerance 1e-4.
        return [("records", rel_err(self.ub(), tnp(self.pt())), 1e-4)]


class Generate(Stage):
    unit = "pairs/s"

    def __init__(self, M, n=16, quick=None):
        self.M, self.count, self.quick = M, n, quick
        self.dir = tempfile.mkdtemp(prefix="ubdiff_bench_")
        self.gen = torch.Generator().manual_seed(0)

    def ub(self):
        kw = dict(sampler="ddim", steps=self.quick) if self.quick else {}
        self.M.ubd.generate(self.count, os.path.join(self.dir, "ub"), seed=0, progress=False, **kw)

    @no_grad
    def pt(self):
        z = self.M.t_vd.sample(self.count, generator=self.gen, last=self.quick)
        self.M.t_ae.eval()
        v, s = self.M.t_ae.decode(z[:, 0])
        os.makedirs(os.path.join(self.dir, "pt"), exist_ok=True)
        v = (v + 1) * 0.5 * (CONSTANTS["label_max"] - CONSTANTS["label_min"]) + CONSTANTS["label_min"]
        np.save(os.path.join(self.dir, "pt", "model1.npy"), tnp(v))
        np.save(os.path.join(self.dir, "pt", "data1.npy"), tnp(s))


def build(stage, M, quick=None):
    return {"step1": lambda: AEStep(M, "step1"), "step2": lambda: AEStep(M, "step2"),
            "diff_train": lambda: DiffTrain(M), "unet_fwd": lambda: UNetFwd(M), "decode": lambda: Decode(M),
            "invnet": lambda: InvNetTrain(), "fwdmod": lambda: FwdModel(),
            "generate": lambda: Generate(M, quick=quick)}[stage]()


def time_ab(st, repeat, warmup=1):
    """Medians (s) of ub() and pt(), alternated A B B A A B ... after warm-up."""
    for _ in range(warmup):
        st.ub()
        st.pt()
    tu, tp = [], []
    for i in range(repeat):
        order = [(st.ub, tu), (st.pt, tp)] if i % 2 == 0 else [(st.pt, tp), (st.ub, tu)]
        for fn, acc in order:
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    return statistics.median(tu), statistics.median(tp)


def describe_machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = ubdiff.build_info()
    return (f"{cpu}, {ubdiff.available_cores()} cores; ubdiff {info['version']}, {info['blas']}; "
            f"torch {torch.__version__} (MKL {torch.backends.mkl.is_available()}, oneDNN "
            f"{torch.backends.mkldnn.is_available()}); load average at start {os.getloadavg()[0]:.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2,default", help="comma list of thread counts, 'default', 'adaptive'")
    ap.add_argument("--load", default="idle,busy", help="comma list of idle | busy")
    ap.add_argument("--busy", type=int, default=2, help="busy processes under 'busy'")
    ap.add_argument("--load-limit", type=float, default=3600.0, help="s after which a busy process ends itself")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--stages", default="all")
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick-generate", type=int, default=None, metavar="K",
                    help="smoke test: generate with K sampling steps (DDIM / the last K DDPM steps), not 256")
    a = ap.parse_args(argv)
    if torch is None:
        print("vs_pytorch: PyTorch is not installed; skipped (pip install torch to compare).")
        return 0
    stages = STAGES if a.stages == "all" else a.stages.split(",")
    bad = sorted(set(stages) - set(STAGES))
    if bad:
        ap.error(f"unknown stages {bad}; choose from {STAGES}")
    threads = a.threads.split(",")
    loads = a.load.split(",")
    print(describe_machine(), flush=True)

    rates = {}
    for th in threads:
        set_threads(th)
        rates[th] = max(sgemm_rate() for _ in range(3))
    print("sgemm 1024^3 (idle, best): " + ", ".join(f"{th} threads {r:.0f} GFLOP/s" for th, r in rates.items()),
          flush=True)

    set_threads(threads[0])
    M = Models(stages)
    built, checks = {}, {}
    for s in stages:
        built[s] = build(s, M, a.quick_generate)
        res = built[s].check()
        checks[s] = "n/a" if not res else ("ok" if all(e <= tol for _, e, tol in res) else "FAIL")
        detail = ", ".join(f"{w} {e:.1e} (tol {tol:.0e})" for w, e, tol in res) or "covered by unet_fwd + decode"
        print(f"check {s}: {checks[s]}: {detail}", flush=True)
    if {"generate", "unet_fwd", "decode"} <= set(built):  # generate = T U-Net steps at batch 16 + one decode
        built["generate"].flops = (a.quick_generate or 256) * built["unet_fwd"].flops + built["decode"].flops

    rows, records = [], []
    for load in loads:
        ctx = busy_load(a.busy, a.load_limit) if load == "busy" else contextlib.nullcontext()
        with ctx:
            for th in threads:
                set_threads(th)
                for s in stages:
                    st = built[s]
                    rep = 1 if s == "generate" else a.repeat
                    tu, tp = time_ab(st, rep, warmup=0 if s == "generate" else 1)
                    ru, rp = st.count / tu, st.count / tp
                    gf = st.flops / tu / 1e9
                    ok = checks[s]
                    rec = dict(stage=s, load=load, threads=th, unit=st.unit, torch=rp, ubdiff=ru, ratio=ru / rp,
                               ub_gflops=gf, frac_sgemm=gf / rates[th], pt_frac_sgemm=st.flops / tp / 1e9 / rates[th],
                               check=ok, loadavg=os.getloadavg()[0])
                    records.append(rec)
                    rows.append((s, load, th, f"{rp:.3g}", f"{ru:.3g}", st.unit, f"{ru / rp:.2f}",
                                 "-" if np.isnan(gf) else f"{gf:.0f}",
                                 "-" if np.isnan(gf) else f"{rec['frac_sgemm']:.2f}",
                                 "-" if np.isnan(gf) else f"{rec['pt_frac_sgemm']:.2f}", ok,
                                 f"{rec['loadavg']:.1f}"))
                    print(f"  {s:10s} {load:4s} {th:>7s} threads: torch {rp:.3g}, ubdiff {ru:.3g} {st.unit} "
                          f"(x{ru / rp:.2f}), load {rec['loadavg']:.1f}", flush=True)
    print()
    print(table(rows, ["stage", "load", "threads", "PyTorch", "ubdiff", "unit", "ubdiff/PyTorch", "ub GFLOP/s",
                       "ub/sgemm", "pt/sgemm", "check", "load avg"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(machine=describe_machine(), sgemm=rates, records=records), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
