"""Accuracy cost of the mixed-precision options (issue 10 item 5), estimated on the CPU
by emulating the operand rounding in NumPy on the paper models' real layer shapes.

For each product Y = A @ B:
  exact  float64 product of the float32 operands;
  fp32   NumPy's float32 matmul (OpenBLAS sgemm: float32 accumulation) — the baseline;
  tf32   operands rounded to 10 explicit mantissa bits (nearest-even), product exact:
         what TF32 tensor cores compute before their float32 accumulation;
  bf16   operands rounded to 7 explicit mantissa bits, product exact (cublasGemmEx with
         bf16 operands and float32 accumulation).
Reported: relative error ||Y - exact||_F / ||exact||_F and max |Y - exact| / rms(exact).
The emulation leaves out the float32 accumulation error of the rounded modes (the fp32
column shows its size: orders of magnitude below the rounding error of tf32/bf16), so it
is the cost of the rounding itself; benchmarks/gpu_check.sh measures the real one.

Operands: activations of the right kind (ReLU'd or LeakyReLU'd normals, the seismic
head's 640-vectors) and weights initialised as the models do (Kaiming / uniform
+-1/sqrt(fan_in)); the first encoder layer reads real velocity maps.

    python benchmarks/precision.py            # ~10 s on one core
"""
import argparse

import numpy as np


def round_mantissa(a, bits):
    """a (float32) rounded to `bits` explicit mantissa bits, nearest, ties to even; as float32."""
    drop = 23 - bits
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + ((1 << (drop - 1)) - 1) + ((u >> drop) & 1)) & ~np.uint64((1 << drop) - 1) & 0xFFFFFFFF
    return u.astype(np.uint32).view(np.float32)


def errors(a, b):
    exact = a.astype(np.float64) @ b.astype(np.float64)
    norm, rms = np.linalg.norm(exact), np.sqrt(np.mean(exact ** 2))
    out = {}
    for name, y in (("fp32", (a @ b).astype(np.float64)),
                    ("tf32", round_mantissa(a, 10).astype(np.float64) @ round_mantissa(b, 10).astype(np.float64)),
                    ("bf16", round_mantissa(a, 7).astype(np.float64) @ round_mantissa(b, 7).astype(np.float64))):
        d = y - exact
        out[name] = (np.linalg.norm(d) / norm, np.abs(d).max() / rms)
    return out


def im2col(x, k, s, p):
    """x (B, C, H, W) -> (B*OH*OW, C*k*k) for a k x k convolution, stride s, padding p."""
    x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    B, C, OH, OW = win.shape[:4]
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5).reshape(B * OH * OW, C * k * k))


def cases(rng, batch):
    relu = lambda z: np.maximum(z, 0).astype(np.float32)  # noqa: E731
    leaky = lambda z: np.where(z > 0, z, 0.2 * z).astype(np.float32)  # noqa: E731
    kaiming = lambda fan_in, shape: (rng.normal(size=shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)  # noqa

    # encoder block 1: real velocity maps -> CBR(1->32, k1) -> conv 32->32 k3 (im2col GEMM, K = 288)
    try:
        from ubdiff.data import generate_velocity
        v = generate_velocity("curvevel-a", batch, seed=0).astype(np.float32)
        v = (v - 1500.0) / 3000.0 * 2 - 1  # the paper's [-1, 1] normalisation of 1.5 - 4.5 km/s
    except Exception:  # no ubdiff: a smooth stand-in
        v = np.cumsum(rng.normal(size=(batch, 1, 70, 70)), axis=2).astype(np.float32) / 10
    h = relu(np.einsum("bchw,oc->bohw", v, kaiming(1, (32, 1))))
    cols = im2col(h, 3, 1, 1)
    w = kaiming(288, (288, 32))
    yield "encoder conv 32->32 k3, 70x70 (forward)", cols, w
    dout = rng.normal(size=(cols.shape[0], 32)).astype(np.float32)
    yield f"  its weight gradient (K = {cols.shape[0]})", np.ascontiguousarray(dout.T), cols

    # encoder block 6: conv 128->256 k3 s2 on 16x16 (K = 1152)
    h = relu(rng.normal(size=(batch, 128, 16, 16)))
    yield "encoder conv 128->256 k3 s2, 16x16", im2col(h, 3, 2, 1), kaiming(1152, (1152, 256))

    # decoder: ConvTranspose 512->256 k4 s2 as its GEMM (K = 512)
    h = leaky(rng.normal(size=(batch * 20 * 20, 512)))
    yield "decoder convT 512->256 k4 (GEMM, K = 512)", h, kaiming(512, (512, 256 * 16))

    # diffusion U-Net: conv1d 256->256 k3 on length 20 (K = 768)
    h = (rng.normal(size=(batch * 20, 768)) * (1 / (1 + np.exp(-rng.normal(size=(batch * 20, 768)))))).astype(np.float32)
    yield "U-Net conv1d 256->256 k3 (K = 768)", h, kaiming(768, (768, 256))

    # seismic transformer MLP: Linear 640 -> 3200
    h = rng.normal(size=(batch * 2, 640)).astype(np.float32)
    yield "transformer MLP Linear 640->3200", h, (rng.uniform(-1, 1, (640, 3200)) / np.sqrt(640)).astype(np.float32)

    # seismic decoder: Linear 640 -> 350,000 (a 35,000-column slice: every column alike)
    h = leaky(rng.normal(size=(batch, 640)))
    yield "seismic decoder Linear 640->350,000 (slice)", h, (rng.uniform(-1, 1, (640, 35000)) / np.sqrt(640)).astype(np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"batch {args.batch}; relative Frobenius error / max error over output rms, vs float64")
    print(f"| product | fp32 (sgemm) | tf32 (emulated) | bf16 (emulated) |\n|---|---|---|---|")
    for name, a, b in cases(rng, args.batch):
        e = errors(a, b)
        print(f"| {name} | " + " | ".join(f"{e[m][0]:.1e} / {e[m][1]:.1e}" for m in ("fp32", "tf32", "bf16")) + " |",
              flush=True)


if __name__ == "__main__":
    main()
