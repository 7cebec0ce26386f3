"""SD (seismic): single-modality latent diffusion on seismic records, the
paper's Table 5 baseline (issue 11, baseline 4, seismic side).

What it trains on what:
  1. an autoencoder on the n seismic records only: the seismic encoder
     (ubdiff.models.seis_encoder, InversionNet's encoder to a Tanh latent of
     the UB-Diff latent size) followed by the UB-Diff seismic head and D_s
     (the co-latent autoencoder's head_s + decoder_s, nothing else of it is
     used or trained). Loss: the paper's seismic reconstruction loss
     l_s = gamma_l1 L1 + gamma_mse MSE (Eq. 3, gammas 1, 1), the same
     objective UB-Diff's D_s is trained on, so the two differ only in where
     z comes from (E_s(seismic) here, E(velocity) there);
  2. the same latent diffusion as UB-Diff (1-D U-Net, v-prediction, T = 256)
     on z = E_s(seismic) of the n records, encoder frozen (eval mode).
Generation: z from reverse diffusion -> head_s + D_s: seismic only, unpaired.

Data are normalised ([-1, 1]) arrays (or memmaps), read a batch at a time.
"""
from __future__ import annotations

import numpy as np

from ._run import LatentBaseline, bar, check_pairs

GAMMAS = (0.0, 0.0, 1.0, 1.0)  # (l1_v, mse_v, l1_s, mse_s): the seismic terms only


class SDSeismic(LatentBaseline):
    """Seismic encoder + D_s autoencoder and a latent diffusion on its z (see the module docstring)."""

    KIND = "sd_seismic"
    STAGE = 11

    def train_batch(self, seis, lr: float, weight_decay: float = 1e-4) -> dict:
        """One AdamW step of encoder, head_s and D_s on a batch of records (B, shots, nt, nr)."""
        s = np.ascontiguousarray(seis, np.float32)
        ae, enc = self.autoencoder, self.encoder
        ae.zero_grad()
        enc.zero_grad()
        z = enc.encode(s, training=True)
        losses, dz = ae.decode_backward(z, seis=s, gammas=GAMMAS)
        if not np.isfinite(losses["seismic"]):
            raise FloatingPointError(f"SD-seismic: loss became {losses['seismic']}; lower lr")
        enc.backward(dz, s)
        ae.apply_update("step2", freeze=True, lr=lr, weight_decay=weight_decay)  # head_s + D_s only
        enc.apply_update(lr=lr, weight_decay=weight_decay)
        return losses

    def fit_autoencoder(self, seismic, epochs: int, batch_size: int | None = None, lr: float = 1e-4,
                        lr_decay: float = 0.995, weight_decay: float = 1e-4, progress: bool = True) -> list:
        """``epochs`` more epochs on the n records (normalised, (n, shots, nt, nr)); the learning
        rate follows the authors' schedule (ubdiff.pipeline.autoencoder_lr, "multistep").
        Returns one dict of mean losses per epoch."""
        n = check_pairs("SDSeismic.fit_autoencoder", None, seismic)
        bs = self._check_batch(batch_size, n)
        out = []
        for _ in range(int(epochs)):
            e = self.epoch
            bl = self._batches(n, bs, e)
            acc, b = {}, bar(len(bl), f"SD-seismic epoch {e + 1}", progress)
            for j, idx in enumerate(bl):
                r = self.train_batch(np.asarray(seismic[idx]), self._lr(lr, lr_decay, e, j, len(bl)), weight_decay)
                for k in ("seismic", "l1_s", "mse_s"):
                    acc[k] = acc.get(k, 0.0) + r[k] / len(bl)
                b.update(1)
            b.close()
            acc["epoch"] = e
            out.append(acc)
            self.epoch += 1
        self.history["autoencoder"].extend(out)
        return out

    def latents(self, seismic) -> np.ndarray:
        """z (n, 1, latent) = E_s(seismic), eval mode."""
        return self.encoder.encode_all(seismic)[:, None, :]

    def reconstruct(self, seismic) -> np.ndarray:
        """D_s(head_s(E_s(seismic))), eval mode, normalised."""
        z = self.encoder.encode_all(seismic)
        return self.decode(z, velocity=False, seismic=True)[1]

    def sample(self, n: int, seed: int = 0, **sampling) -> np.ndarray:
        """n new seismic records (n, shots, nt, nr), normalised (sampling: sampler, steps, eta, weights)."""
        return self.decode(self.sample_latents(n, seed=seed, **sampling), velocity=False, seismic=True)[1]
