"""MT-Diffusion (Chen et al. 2024, "Diffusion Models for Multi-Task Generative
Modeling", arXiv 2407.17571; no public code): the paper's paired-only
multi-modal diffusion baseline (issue 11, baseline 2). Our reading of it:

* one encoder per modality: velocity -> the UB-Diff encoder E (the co-latent
  autoencoder's), seismic -> the seismic encoder E_s (ubdiff.models.
  seis_encoder, InversionNet's encoder to the same latent), both ending in
  Tanh;
* aggregation into ONE shared diffusion latent: the mean
  z = (E(v) + E_s(s)) / 2 (MT-Diffusion's forward process is driven by "an
  information aggregation" of the modalities; a mean keeps z in (-1, 1) like
  UB-Diff's latents and adds no parameters);
* the same denoiser as UB-Diff: the 1-D U-Net, v-prediction, cosine schedule,
  T = 256;
* one decoder head per modality: the UB-Diff heads + D_v and + D_s;
* trained end to end on the n pairs only with
      l = l_v(D_v(z), v) + l_s(D_s(z), s) + w_diff * l_diff(z)
  (the per-modality reconstruction, "decomposition", terms are the paper's
  Eq. 2/3 losses, gamma_l1 L1 + gamma_mse MSE; l_diff the v-prediction loss).
  The diffusion loss reaches the encoders through the U-Net's input gradient
  (dl_diff/dz, :func:`latent_loss_grad`), so z is shaped by all three terms;
  the same U-Net pass (one draw of t and noise) gives the U-Net's parameter
  gradient, and LatentDiffusion.apply_update takes its step (Adam, clipping,
  EMA, as the diffusion's own training). w_diff weighs the diffusion term in
  the encoders' gradient; the U-Net, which only that term reaches, gets its
  plain gradient (Adam is invariant to the scale up to eps and clipping).
* After the joint epochs the U-Net may continue alone on the frozen latents
  (``fit_diffusion``), so that it gets as many denoiser steps as the other
  methods' diffusions (the compare method does this; the joint epochs alone
  give only n / batch_size U-Net steps each).
Sampling: one noise draw -> z by reverse diffusion -> (D_v, D_s) of z: a pair.

Data are normalised ([-1, 1]) arrays (or memmaps), read a batch at a time.
"""
from __future__ import annotations

import numpy as np

from ._run import LatentBaseline, bar, check_pairs

GAMMAS = (1.0, 1.0, 1.0, 1.0)  # (l1_v, mse_v, l1_s, mse_s), as UB-Diff's


def latent_loss_grad(diffusion, z0, t, noise, param_grads: bool = False):
    """(loss, dz0): the v-prediction loss of LatentDiffusion.loss for latents z0 (B, C, L), times t
    (B,) ints and noise (B, C, L), and its gradient with respect to z0 through the U-Net:
      x_t = sa z0 + s1 e,  v = sa e - s1 z0,  loss = mean_b w_t mean_i (U(x_t, t) - v)^2,
      dz0 = sa dL/dx_t + s1 dL/dU   (dv/dz0 = -s1, dL/dv = -dL/dU).
    Chunked by the diffusion's max_batch (the U-Net treats samples independently). The U-Net's
    gradient buffer is zeroed first; param_grads=True leaves dloss/dparams in it (for
    LatentDiffusion.apply_update), else zero."""
    z0 = np.asarray(z0, np.float32)
    noise = np.asarray(noise, np.float32)
    t = np.asarray(t)
    if z0.ndim != 3 or z0.shape[1:] != diffusion.sample_shape or noise.shape != z0.shape:
        raise ValueError(f"z0 and noise must be (B, {', '.join(map(str, diffusion.sample_shape))}), "
                         f"got {z0.shape}, {noise.shape}")
    if t.shape != (len(z0),) or not np.issubdtype(t.dtype, np.integer) or t.min() < 0 \
            or t.max() >= diffusion.timesteps:
        raise ValueError(f"t must be ({len(z0)},) ints in 0..{diffusion.timesteps - 1}")
    S = diffusion.schedule
    # float32 coefficients, as the C loss takes them
    sa = S["sqrt_alphas_cumprod"].astype(np.float32)[t][:, None, None]
    s1 = S["sqrt_one_minus_alphas_cumprod"].astype(np.float32)[t][:, None, None]
    w = S["loss_weight"].astype(np.float32)[t].astype(np.float64)
    B, per = len(z0), z0[0].size
    xt = sa * z0 + s1 * noise
    v = sa * noise - s1 * z0
    dz = np.empty_like(z0)
    total = 0.0
    diffusion.zero_grad()
    mb = diffusion.max_batch
    for a in range(0, B, mb):
        sl = slice(a, a + mb)
        pred = diffusion.forward(xt[sl], t[sl].astype(np.float32))
        r = pred.astype(np.float64) - v[sl]
        total += float(np.sum(w[sl] * np.mean(r.reshape(len(r), -1) ** 2, axis=1)))
        dpred = (2.0 * w[sl, None, None] * r / (per * B)).astype(np.float32)
        dxt = diffusion.backward(dpred, input_grad=True)
        dz[sl] = sa[sl] * dxt + s1[sl] * dpred
    if not param_grads:
        diffusion.zero_grad()
    return total / B, dz


class MTDiffusion(LatentBaseline):
    """Two encoders, one shared latent, the 1-D U-Net and both UB-Diff decoders (module docstring)."""

    KIND = "mt_diffusion"
    STAGE = 12

    def aggregate(self, vel, seis, training: bool = False) -> np.ndarray:
        """The shared latent z (B, latent) = (E(vel) + E_s(seis)) / 2."""
        zv = self.autoencoder.encode(vel, training=training)
        zs = self.encoder.encode(seis, training=training)
        return 0.5 * (zv + zs)

    def gradients(self, vel, seis, diffusion_weight: float = 1.0, step_key: tuple = (0, 0)) -> dict:
        """The losses of one end-to-end step on a batch of pairs, and their gradients left in the
        three models' gradient buffers (zeroed first): E, E_s, both heads and decoders get those
        of l_v + l_s + w_diff l_diff, the U-Net that of l_diff (one draw of t and noise, keyed by
        step_key). Training-mode BatchNorm (running statistics move); no parameter changes."""
        v = np.ascontiguousarray(vel, np.float32)
        s = np.ascontiguousarray(seis, np.float32)
        ae, enc, d = self.autoencoder, self.encoder, self.diffusion
        ae.zero_grad()
        enc.zero_grad()
        z = self.aggregate(v, s, training=True)
        losses, dz = ae.decode_backward(z, vel=v, seis=s, gammas=GAMMAS)
        rng = np.random.default_rng([self.seed, self.STAGE, *step_key])
        B = len(z)
        t = rng.integers(0, d.timesteps, B)
        noise = rng.standard_normal((B, *d.sample_shape)).astype(np.float32)
        ldiff, dzd = latent_loss_grad(d, z[:, None, :], t, noise, param_grads=True)
        losses["diffusion"] = ldiff
        losses["total"] = losses["total"] + diffusion_weight * ldiff
        dz = dz + np.float32(diffusion_weight) * dzd[:, 0, :]
        half = (0.5 * dz).astype(np.float32)   # d z / d E(v) = d z / d E_s(s) = 1/2
        ae.encode_backward(half, v)
        enc.backward(half, s)
        return losses

    def train_batch(self, vel, seis, lr: float, diffusion_lr: float = 8e-5, diffusion_weight: float = 1.0,
                    weight_decay: float = 1e-4, step_key: tuple = (0, 0), max_grad_norm: float = 1.0) -> dict:
        """One end-to-end step on a batch of pairs: AdamW on E, E_s, both heads and decoders from
        l_v + l_s + w_diff l_diff, and the U-Net's step from the same diffusion draw (gradients())."""
        losses = self.gradients(vel, seis, diffusion_weight, step_key)
        if not np.isfinite(losses["total"]):
            raise FloatingPointError(f"MT-Diffusion: loss became {losses['total']}; lower lr")
        self.autoencoder.apply_update("wo_opt", lr=lr, weight_decay=weight_decay)   # every group of the autoencoder
        self.encoder.apply_update(lr=lr, weight_decay=weight_decay)
        self.diffusion.apply_update(lr=diffusion_lr, max_grad_norm=max_grad_norm)
        return losses

    def fit(self, velocity_pairs, seismic_pairs, epochs: int, batch_size: int | None = None, lr: float = 1e-4,
            lr_decay: float = 0.995, diffusion_lr: float = 8e-5, diffusion_weight: float = 1.0,
            weight_decay: float = 1e-4, progress: bool = True) -> list:
        """``epochs`` more end-to-end epochs on the n pairs (normalised). Returns one dict of mean
        losses per epoch (velocity, seismic, diffusion, total)."""
        n = check_pairs("MTDiffusion.fit", velocity_pairs, seismic_pairs)
        bs = self._check_batch(batch_size, n)
        if not (np.isfinite(diffusion_weight) and diffusion_weight >= 0):
            raise ValueError(f"diffusion_weight must be finite and >= 0, got {diffusion_weight}")
        out = []
        for _ in range(int(epochs)):
            e = self.epoch
            bl = self._batches(n, bs, e)
            acc, b = {}, bar(len(bl), f"MT-Diffusion epoch {e + 1}", progress)
            for j, idx in enumerate(bl):
                r = self.train_batch(np.asarray(velocity_pairs[idx]), np.asarray(seismic_pairs[idx]),
                                     self._lr(lr, lr_decay, e, j, len(bl)), diffusion_lr, diffusion_weight,
                                     weight_decay, step_key=(e, j))
                for k in ("velocity", "seismic", "diffusion", "total"):
                    acc[k] = acc.get(k, 0.0) + r[k] / len(bl)
                b.update(1)
            b.close()
            acc["epoch"] = e
            out.append(acc)
            self.epoch += 1
        self.history["autoencoder"].extend(out)
        return out

    def latents(self, velocity_pairs, seismic_pairs) -> np.ndarray:
        """z (n, 1, latent) of the pairs, both encoders in eval mode."""
        n = check_pairs("MTDiffusion.latents", velocity_pairs, seismic_pairs, n_min=1)
        mb = self.max_batch
        z = [self.aggregate(np.asarray(velocity_pairs[a:a + mb]), np.asarray(seismic_pairs[a:a + mb]))
             for a in range(0, n, mb)]
        return np.concatenate(z)[:, None, :]

    def reconstruct(self, velocity_pairs, seismic_pairs):
        """(velocity, seismic) decoded from the pairs' shared latents, eval mode, normalised."""
        return self.decode(self.latents(velocity_pairs, seismic_pairs)[:, 0], velocity=True, seismic=True)

    def sample(self, n: int, seed: int = 0, **sampling):
        """n new pairs (velocity (n,1,70,70), seismic (n, shots, nt, nr)), normalised, from one
        noise draw each (sampling: sampler, steps, eta, weights)."""
        return self.decode(self.sample_latents(n, seed=seed, **sampling), velocity=True, seismic=True)
