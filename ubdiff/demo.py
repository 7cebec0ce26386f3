"""`python -m ubdiff demo`: a smoke demo of the core until the models land.

It fits a two-layer MLP (linear -> GELU -> linear) to a noisy sine with AdamW,
using only the C core's ops (forward, backward, optimiser on a flat buffer),
prints the loss curve and writes a figure of the fit.
"""
from __future__ import annotations

import os

import numpy as np

from . import build_info, ops
from ._native import lib


def run_demo(out_dir: str = "demo_out", seed: int = 0, steps: int = 400) -> int:
    from tqdm import tqdm

    info = build_info()
    print(f"ubdiff {info['version']} | BLAS: {info['blas']} | threads: {info['num_threads']} | "
          f"CUDA compiled: {info['cuda_compiled']} | GPU: {info['gpu_present']}")
    rng = np.random.default_rng(seed)
    x = np.linspace(-3, 3, 256, dtype=np.float32)[:, None]
    y = (np.sin(2 * x) + 0.05 * rng.standard_normal(x.shape)).astype(np.float32)

    H = 64
    pb = lib.ParamBuffer()
    for name, shape in (("fc1.weight", (H, 1)), ("fc1.bias", (H,)), ("fc2.weight", (1, H)), ("fc2.bias", (1,))):
        pb.add(name, shape)
    for k in ("param", "grad", "m", "v"):
        pb.alloc(k)
    P = {n: pb.view(n) for n, _, _ in pb.spec()}
    G = {n: pb.view(n, "grad") for n, _, _ in pb.spec()}
    P["fc1.weight"][:] = ops.rand_normal((H, 1), seed) * 1.0
    P["fc2.weight"][:] = ops.rand_normal((1, H), seed, stream=1) / np.sqrt(H)
    flat_p, flat_g, m, v = (pb.flat(k) for k in ("param", "grad", "m", "v"))

    h_pre = np.empty((len(x), H), np.float32)
    h = np.empty_like(h_pre)
    pred = np.empty_like(y)
    losses = []
    for t in tqdm(range(1, steps + 1), desc="demo fit", unit="step"):
        lib.linear_forward(h_pre, x, P["fc1.weight"], P["fc1.bias"])
        lib.act_forward(h, h_pre, ops.ACTIVATIONS["gelu"])
        lib.linear_forward(pred, h, P["fc2.weight"], P["fc2.bias"])
        losses.append(lib.mse_forward(pred, y))
        flat_g[:] = 0
        dpred = np.zeros_like(pred)
        lib.mse_backward(dpred, pred, y)
        dh = np.zeros_like(h)
        lib.linear_backward(dh, G["fc2.weight"], G["fc2.bias"], dpred, h, P["fc2.weight"])
        dh_pre = np.zeros_like(h_pre)
        lib.act_backward(dh_pre, dh, h_pre, ops.ACTIVATIONS["gelu"])
        lib.linear_backward(None, G["fc1.weight"], G["fc1.bias"], dh_pre, x, P["fc1.weight"])
        lib.adam_update(flat_p, m, v, flat_g, t, 1e-2, 0.9, 0.999, 1e-8, 1e-4, True)
    print(f"MSE: step 1 {losses[0]:.4f} -> step {steps} {losses[-1]:.4f}")

    os.makedirs(out_dir, exist_ok=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(x[:, 0], y[:, 0], ".", ms=3, label="data")
    ax[0].plot(x[:, 0], pred[:, 0], "-", label="MLP (ubdiff core)")
    ax[0].legend()
    ax[0].set_title("fit")
    ax[1].semilogy(losses)
    ax[1].set_xlabel("step")
    ax[1].set_ylabel("MSE")
    ax[1].set_title("training loss")
    fig.tight_layout()
    path = os.path.join(out_dir, "demo_fit.png")
    fig.savefig(path, dpi=100)
    print(f"figure: {path}")
    return 0 if losses[-1] < 0.5 * losses[0] else 1
