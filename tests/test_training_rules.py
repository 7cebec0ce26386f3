"""Training as the authors' code trains (issue 16): the autoencoder's learning-rate
schedule (WarmupMultiStepLR), batch_norm_s's statistics in step 1, the EMA of
ema-pytorch 0.2.3, and which diffusion weights sample. Each rule is compared with a
NumPy / plain-Python reference written from the authors' code:

- lanl/OpenFWI scheduler.py ``WarmupMultiStepLR`` (the one train_EncDec.py and
  fine_tune_Dec_S.py import), stepped after every batch, milestones
  ``len(dataloader) * [10, 20, ...]``, warmup_factor 1e-5;
- ema_pytorch 0.2.3 ``EMA.update`` / ``get_current_decay`` as Trainer1D calls them
  (once after every optimiser step; beta 0.995, update_every 10);
- PyTorch BatchNorm's running-statistics update (momentum 0.1, unbiased variance).
"""
import json
import os
from bisect import bisect_right

import numpy as np
import pytest

import ubdiff
from ubdiff import UBDiff
from ubdiff.models.autoencoder import CoLatentAutoencoder
from ubdiff.models.diffusion import LatentDiffusion, ema_update_at, make_ema_rule
from ubdiff.pipeline import autoencoder_lr, paper_hyperparameters

AE = dict(dim1=4, dim2=4, dim3=8, dim4=8, latent=16, head_width=4, heads=2, mlp_hidden=16, nt=50, max_batch=8)
DIFF = dict(dim=8, dim_mults=(1, 2), groups=4, heads=2, dim_head=8, timesteps=32)
CFG = {"autoencoder": AE, "diffusion": DIFF}
TINY_DIFF = dict(dim=8, dim_mults=(1, 2), seq_len=8, groups=2, heads=2, dim_head=4, timesteps=16)


@pytest.fixture(autouse=True)
def one_thread():
    # tiny models: threads gain nothing on a shared machine; bit-exact comparisons are
    # between runs in this process with this one thread count
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


@pytest.fixture(scope="module")
def vel():
    return ubdiff.data.generate_velocity("flatvel-a", 16, seed=0)


def seismic(n):
    """Stand-in records (5 shots, nt 50, 70 receivers): the rules here do not depend on them."""
    return np.random.default_rng(n).normal(0, 1, (n, 5, 50, 70)).astype(np.float32)


# ---- 1. learning rate -----------------------------------------------------------------
class RefWarmupMultiStepLR:
    """OpenFWI scheduler.py WarmupMultiStepLR with torch's _LRScheduler bookkeeping: the
    constructor steps once (last_epoch -1 -> 0), the optimiser uses the current lr, and
    train_one_epoch calls step() after every optimiser step."""

    def __init__(self, base_lr, milestones, gamma, warmup_factor, warmup_iters, warmup_method="linear"):
        assert list(milestones) == sorted(milestones)
        self.base_lr, self.milestones, self.gamma = base_lr, milestones, gamma
        self.warmup_factor, self.warmup_iters, self.warmup_method = warmup_factor, warmup_iters, warmup_method
        self.last_epoch = -1
        self.step()

    def get_lr(self):
        warmup_factor = 1
        if self.last_epoch < self.warmup_iters:
            if self.warmup_method == "constant":
                warmup_factor = self.warmup_factor
            elif self.warmup_method == "linear":
                alpha = float(self.last_epoch) / self.warmup_iters
                warmup_factor = self.warmup_factor * (1 - alpha) + alpha
        return self.base_lr * warmup_factor * self.gamma ** bisect_right(self.milestones, self.last_epoch)

    def step(self):
        self.last_epoch += 1
        self.lr = self.get_lr()


def authors_lrs(lr, gamma, epochs, nb, warmup_epochs=0, milestones=None, epoch_batches=None):
    """The lr of every batch as train_EncDec.py / fine_tune_Dec_S.py produce it."""
    E = nb if epoch_batches is None else epoch_batches   # their len(dataloader_train)
    if milestones is None:
        milestones = [(epo + 1) for epo in range(epochs) if (epo + 1) % 10 == 0]
    sched = RefWarmupMultiStepLR(lr, [E * m for m in milestones], gamma, 1e-5, warmup_epochs * E)
    out = np.empty((epochs, nb))
    for e in range(epochs):
        for j in range(nb):
            out[e, j] = sched.lr        # optimizer.step() with the current lr
            sched.step()                # lr_scheduler.step() after every batch
    return out


def ubdiff_lrs(lr, gamma, epochs, nb, **kw):
    return np.array([[autoencoder_lr(lr, gamma, e, j, nb, **kw) for j in range(nb)] for e in range(epochs)])


@pytest.mark.parametrize("warmup", [0, 3])
@pytest.mark.parametrize("nb", [1, 7])
def test_lr_matches_authors_scheduler_per_iteration(warmup, nb):
    # both compute lr * factor * gamma ** k in double precision from the same numbers; the only
    # freedom is the order of the products, so agreement to 1e-14 relative is the expectation
    got = ubdiff_lrs(1e-4, 0.9, 60, nb, warmup_epochs=warmup)
    ref = authors_lrs(1e-4, 0.9, 60, nb, warmup_epochs=warmup)
    np.testing.assert_allclose(got, ref, rtol=1e-14, atol=0)
    if warmup:
        assert got[0, 0] == pytest.approx(1e-9) and got[warmup, 0] == pytest.approx(1e-4)
    assert got[59, -1] == pytest.approx(1e-4 * 0.9 ** 5, rel=1e-14)


def test_lr_milestone_list_period_and_epoch_batches():
    ref = authors_lrs(5e-4, 0.98, 40, 4, milestones=[3, 7, 30])
    np.testing.assert_allclose(ubdiff_lrs(5e-4, 0.98, 40, 4, milestones=[3, 7, 30]), ref, rtol=1e-14)
    np.testing.assert_allclose(ubdiff_lrs(5e-4, 0.98, 40, 4, milestones=5),
                               authors_lrs(5e-4, 0.98, 40, 4, milestones=list(range(5, 41, 5))), rtol=1e-14)
    # fine_tune_Dec_S.py: 4 batches of pairs per epoch, milestones and warm-up counted in
    # batches of the step-1 loader (9): the lr changes inside an epoch
    got = ubdiff_lrs(1e-4, 0.9, 60, 4, epoch_batches=9, warmup_epochs=1)
    np.testing.assert_allclose(got, authors_lrs(1e-4, 0.9, 60, 4, epoch_batches=9, warmup_epochs=1,
                                                milestones=list(range(10, 61, 10))), rtol=1e-14)
    assert got[22, 2] == pytest.approx(0.9 * got[22, 1], rel=1e-14)   # iteration 90 = milestone 10 * 9


def test_flatvel_lr_at_the_paper_epochs():
    hp = paper_hyperparameters("flatvel-a")
    lr = {e: autoencoder_lr(hp["lr"], hp["lr_decay"], e, 0, 375) for e in (9, 10, 59, 999)}
    assert lr[9] == pytest.approx(1e-4, rel=1e-14)
    assert lr[10] == pytest.approx(9e-5, rel=1e-14)
    assert lr[59] == pytest.approx(1e-4 * 0.9 ** 5, rel=1e-14)     # 5.9e-5, not 1e-4 * 0.9 ** 59 = 2.0e-7
    assert lr[999] == pytest.approx(1e-4 * 0.9 ** 99, rel=1e-14)
    assert autoencoder_lr(1e-4, 0.9, 59, 0, 375, rule="per-epoch") == pytest.approx(1e-4 * 0.9 ** 59)


def record_lrs(m):
    seen, step = [], m.autoencoder.train_step

    def spy(*a, **kw):
        seen.append(kw["lr"])
        return step(*a, **kw)
    m.autoencoder.train_step = spy
    return seen


def test_training_uses_the_schedule_and_saves_it(vel, tmp_path):
    m = UBDiff(CFG, seed=0)
    seen = record_lrs(m)
    h = m.fit_autoencoder(vel, 3, batch_size=4, lr=1e-3, lr_decay=0.5, lr_milestones=[1, 2], lr_warmup_epochs=1,
                          progress=False)
    ref = authors_lrs(1e-3, 0.5, 3, 4, warmup_epochs=1, milestones=[1, 2])
    np.testing.assert_allclose(seen, ref.ravel(), rtol=1e-14)
    assert [r["lr"] for r in h] == pytest.approx(list(ref[:, 0]), rel=1e-14)
    st = m.state["step1"]
    assert st["lr_rule"] == "multistep" and st["lr_milestones"] == [1, 2] and st["lr_warmup_epochs"] == 1
    m.save(tmp_path / "r")
    m2 = UBDiff.load(tmp_path / "r")
    seen2 = record_lrs(m2)
    m2.fit_autoencoder(vel, 1, batch_size=4, lr=1e-3, lr_decay=0.5, progress=False)   # settings as saved
    assert seen2 == pytest.approx([1e-3 * 0.25] * 4, rel=1e-14)


def flat_ae(m):
    return [m.autoencoder.flat(k).copy() for k in ("param", "m", "v", "buf")]


def test_resume_across_a_milestone_and_the_warmup_is_exact(vel, tmp_path):
    kw = dict(batch_size=4, lr=2e-3, lr_decay=0.5, lr_milestones=[2], lr_warmup_epochs=2, progress=False)
    a = UBDiff(CFG, seed=1)
    a.fit_autoencoder(vel, 3, **kw)
    b = UBDiff(CFG, seed=1)
    b.fit_autoencoder(vel, 1, **kw)        # inside the warm-up, before the milestone
    b.save(tmp_path / "b")
    b = UBDiff.load(tmp_path / "b")
    b.fit_autoencoder(vel, 2, batch_size=4, lr=2e-3, lr_decay=0.5, progress=False)   # saved settings
    for x, y in zip(flat_ae(a), flat_ae(b)):
        assert np.array_equal(x, y)
    assert a.history == b.history and a.state == b.state


def test_old_run_folders_keep_the_per_epoch_rule(vel, tmp_path):
    m = UBDiff(CFG, seed=0)
    m.fit_autoencoder(vel, 1, batch_size=4, lr=1e-3, lr_decay=0.5, lr_rule="per-epoch", progress=False)
    m.save(tmp_path / "old")
    fn = tmp_path / "old" / "ubdiff.json"
    info = json.loads(fn.read_text())
    info["state"]["step1"] = {"epoch": 1}   # what ubdiff saved before the rule was saved
    fn.write_text(json.dumps(info))
    old = UBDiff.load(tmp_path / "old")
    seen = record_lrs(old)
    old.fit_autoencoder(vel, 1, batch_size=4, lr=1e-3, lr_decay=0.5, progress=False)
    assert seen == [1e-3 * 0.5] * 4 and old.state["step1"]["lr_rule"] == "per-epoch"
    # a stage not yet started takes the authors' rule
    old.finetune(vel[:8], seismic(8), 1, batch_size=4, progress=False)
    assert old.state["step2"]["lr_rule"] == "multistep"


def test_lr_setting_errors(vel):
    m = UBDiff(CFG, seed=0)
    with pytest.raises(ValueError, match="lr_rule"):
        m.fit_autoencoder(vel, 1, lr_rule="cosine", progress=False)
    with pytest.raises(ValueError, match="lr_milestones"):
        m.fit_autoencoder(vel, 1, lr_milestones=[20, 10], progress=False)
    with pytest.raises(ValueError, match="lr_milestones"):
        m.fit_autoencoder(vel, 1, lr_milestones=0, progress=False)
    with pytest.raises(ValueError, match="lr_warmup_epochs"):
        m.fit_autoencoder(vel, 1, lr_warmup_epochs=-1, progress=False)
    with pytest.raises(ValueError, match="multistep"):
        m.fit_autoencoder(vel, 1, lr_rule="per-epoch", lr_warmup_epochs=2, progress=False)
    assert m.state["step1"] == {"epoch": 0}
    before = m.autoencoder.flat().copy()
    with pytest.raises(ValueError, match="lr_epoch_batches"):   # fails before w/o opt re-initialises
        m.fit_wo_opt(vel[:8], seismic(8), 1, lr_epoch_batches=0, progress=False)
    assert np.array_equal(before, m.autoencoder.flat())


# ---- 2. batch_norm_s in step 1 ------------------------------------------------------------
def test_step1_updates_batch_norm_s_as_the_authors_forward(vel):
    cfg = dict(AE, max_batch=4)
    a, b = CoLatentAutoencoder(cfg, seed=2), CoLatentAutoencoder(cfg, seed=2)
    rng = np.random.default_rng(0)
    for k in range(2):   # two batches: the second starts from non-trivial running statistics
        v = np.clip(rng.uniform(-1, 1, (4, 1, 70, 70)), -1, 1).astype(np.float32)
        z = a.encode(v, training=True).astype(np.float64)     # E in training mode, as in the step
        W, bias = b.parameter("fc_s.weight").astype(np.float64), b.parameter("fc_s.bias").astype(np.float64)
        rm0 = b.buffer("batch_norm_s.running_mean").astype(np.float64)
        rv0 = b.buffer("batch_norm_s.running_var").astype(np.float64)
        nbt0 = b.buffer("batch_norm_s.num_batches_tracked")[0]
        fc_s0, d_s0 = b.flat()[b.group_slice("head_s")].copy(), b.flat()[b.group_slice("decoder_s")].copy()
        b.train_step(v, mode="step1", lr=1e-3)
        a.train_step(v, mode="step1", lr=1e-3)                # keep a's weights equal to b's
        y = z @ W.T + bias                                    # fc_s, (B, 640 -> here head width * 5)
        rm = 0.9 * rm0 + 0.1 * y.mean(0)                      # torch BatchNorm, momentum 0.1
        rv = 0.9 * rv0 + 0.1 * y.var(0, ddof=1)               # running variance: unbiased
        # float32 statistics of B = 4 rows of O(1) values: a few ulp of relative error
        np.testing.assert_allclose(b.buffer("batch_norm_s.running_mean"), rm, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.buffer("batch_norm_s.running_var"), rv, rtol=1e-5, atol=1e-6)
        assert b.buffer("batch_norm_s.num_batches_tracked")[0] == nbt0 + 1 == k + 1
        # the seismic side is not trained in step 1
        assert np.array_equal(b.flat()[b.group_slice("head_s")], fc_s0)
        assert np.array_equal(b.flat()[b.group_slice("decoder_s")], d_s0)
        assert np.array_equal(a.flat(), b.flat())   # a's extra encode changed only E's running statistics


# ---- 3. EMA ---------------------------------------------------------------------------------
class RefEMA:
    """ema_pytorch 0.2.3 EMA (beta 0.995, update_every 10, update_after_step 100, inv_gamma 1,
    power 2/3, min_value 0) on a flat float32 vector, lerp as ubdiff's float32 formula."""

    def __init__(self, weights, beta=0.995, update_every=10, update_after_step=100, inv_gamma=1.0, power=2 / 3,
                 min_value=0.0):
        self.ema = weights.copy()                      # deepcopy(model) at construction
        self.beta, self.update_every, self.update_after_step = beta, update_every, update_after_step
        self.inv_gamma, self.power, self.min_value = inv_gamma, power, min_value
        self.initted, self.step = False, 0
        self.decays = {}

    def get_current_decay(self):
        epoch = max(self.step - self.update_after_step - 1, 0.)
        value = 1 - (1 + epoch / self.inv_gamma) ** - self.power
        if epoch <= 0:
            return 0.
        return min(max(value, self.min_value), self.beta)

    def update(self, weights):
        step = self.step
        self.step += 1
        if (step % self.update_every) != 0:
            return
        if step <= self.update_after_step:
            self.ema = weights.copy()
            self.decays[self.step] = "copy"
            return
        if not self.initted:
            self.ema = weights.copy()
            self.initted = True
        d = self.get_current_decay()
        a = np.float32(1) - np.float32(d)
        self.ema = self.ema + a * (weights - self.ema)
        self.decays[self.step] = d


def test_ema_decay_schedule_closed_form():
    rule = make_ema_rule()
    initted, got = False, {}
    for k in range(1, 3001):
        d, initted = ema_update_at(rule, k, initted)
        got[k] = d
    assert got[1] == 0.0 and got[11] == 0.0 and got[101] == 0.0       # copies up to update_after_step
    assert got[100] is None and got[2] is None                        # between updates: none
    assert got[111] == 0.0                                            # first update after: initted copy
    assert got[121] == pytest.approx(1 - 21 ** (-2 / 3), rel=1e-15)
    assert got[2921] == pytest.approx(1 - 2821 ** (-2 / 3), rel=1e-15) and got[2921] < 0.995
    assert got[2931] == 0.995                                         # capped at beta from here on
    assert [k for k, d in got.items() if d is not None][:13] == [1 + 10 * i for i in range(13)]
    ref = RefEMA(np.zeros(1, np.float32))
    for k in range(1, 3001):
        ref.update(np.zeros(1, np.float32))
    for k, d in ref.decays.items():
        assert (got[k] == 0.0) if d == "copy" else (got[k] == d or (k == 111 and got[k] == 0.0)), k
    fixed = make_ema_rule("fixed", update_every=3, beta=0.5)
    assert [ema_update_at(fixed, k)[0] for k in range(1, 7)] == [None, None, 0.5, None, None, 0.5]


def tiny_diffusion(seed=0):
    return LatentDiffusion(TINY_DIFF, seed=seed, max_batch=2, device="cpu")


def z_batch(k):
    return np.random.default_rng([7, k]).uniform(-1, 1, (2, 1, 8)).astype(np.float32)


def test_ema_weights_follow_ema_pytorch():
    m = tiny_diffusion()
    ref = RefEMA(m.flat("param").copy())
    check = {1, 11, 100, 101, 111, 121}
    for k in range(1, 122):
        r = m.train_step(z_batch(k), lr=1e-3)
        ref.update(m.flat("param").copy())
        if k in check:
            assert np.array_equal(m.flat("ema"), ref.ema), k
            if k in (1, 11, 101, 111):
                assert np.array_equal(m.flat("ema"), m.flat("param")), k   # copies
    assert r["ema_decay"] == pytest.approx(1 - 21 ** (-2 / 3)) and m.ema_initted
    # jump to the end of the warm-up: the same rule from step 2,911 on
    m.step = ref.step = 2910
    for k in range(2911, 2932):
        r = m.train_step(z_batch(k), lr=1e-3)
        ref.update(m.flat("param").copy())
        if k in (2921, 2931):
            assert np.array_equal(m.flat("ema"), ref.ema), k
    assert r["ema_decay"] == 0.995 and ref.decays[2931] == 0.995 and ref.decays[2921] < 0.995


def flat_diff(m):
    return [m.flat(k).copy() for k in ("param", "ema", "m", "v")]


@pytest.mark.parametrize("cut", [105, 115])
def test_ema_resume_across_the_warmup_is_exact(tmp_path, cut):
    # cut 105: before the initted copy at 111; cut 115: after it (a lost `initted` would copy at 121)
    a = tiny_diffusion(seed=3)
    for k in range(125):
        a.train_step(z_batch(k), lr=1e-3)
    b = tiny_diffusion(seed=3)
    for k in range(cut):
        b.train_step(z_batch(k), lr=1e-3)
    b.save(str(tmp_path / "d.safetensors"))
    b = LatentDiffusion.load(str(tmp_path / "d.safetensors"))
    assert b.ema_initted == (cut > 111) and b.ema_rule == make_ema_rule()
    for k in range(cut, 125):
        b.train_step(z_batch(k), lr=1e-3)
    for x, y in zip(flat_diff(a), flat_diff(b)):
        assert np.array_equal(x, y)


def test_fixed_rule_and_old_checkpoints(tmp_path):
    m = tiny_diffusion()
    m.set_ema("fixed", update_every=2)
    e0 = m.flat("ema").copy()
    m.train_step(z_batch(0))
    assert np.array_equal(m.flat("ema"), e0)                  # step 1: no update (EMA = initial weights)
    m.train_step(z_batch(1))
    a = np.float32(1) - np.float32(0.995)
    assert np.array_equal(m.flat("ema"), e0 + a * (m.flat("param") - e0))
    path = str(tmp_path / "old.safetensors")
    m.save(path)
    from ubdiff import checkpoint
    tensors, meta = checkpoint.load(path)
    del meta["ema"]                                            # a checkpoint from before the rule was saved
    checkpoint.save(path, tensors, meta)
    assert LatentDiffusion.load(path).ema_rule == make_ema_rule("fixed")
    with pytest.raises(ValueError, match="EMA rule"):
        m.set_ema("karras")
    with pytest.raises(ValueError, match="beta"):
        m.set_ema("fixed", beta=1.5)
    with pytest.raises(ValueError, match="unknown"):
        m.set_ema("fixed", power=1.0)


def test_pipeline_ema_rule_is_saved_with_the_run(vel, tmp_path):
    m = UBDiff(CFG, seed=0)
    m.fit_diffusion(vel, 2, batch_size=4, progress=False)
    assert m.diffusion.ema_rule["rule"] == "ema-pytorch"
    m.fit_diffusion(vel, 1, batch_size=4, ema="fixed", ema_every=3, progress=False)
    m.save(tmp_path / "r")
    m2 = UBDiff.load(tmp_path / "r")
    assert m2.diffusion.ema_rule == make_ema_rule("fixed", update_every=3)
    m2.fit_diffusion(vel, 1, batch_size=4, ema_decay=0.9, progress=False)   # keeps rule, changes beta
    assert m2.diffusion.ema_rule == make_ema_rule("fixed", update_every=3, beta=0.9)


# ---- 4. which weights sample -------------------------------------------------------------------
def test_weights_online_is_the_default_and_ema_selectable(vel, tmp_path):
    m = UBDiff(CFG, seed=0)
    m.fit_autoencoder(vel, 1, batch_size=4, progress=False)
    m.finetune(vel[:8], seismic(8), 1, batch_size=4, progress=False)
    m.fit_diffusion(vel, 2, batch_size=4, progress=False)
    m.diffusion.flat("ema")[:] = m.diffusion.flat("param") * 0.5     # make the two clearly different
    d = m.diffusion
    kw = dict(seed=3, sampler="ddim", steps=3)
    online = m.sample(2, decode=False, **kw)
    assert np.array_equal(online, d.sample(2, use_ema=False, **kw))
    assert np.array_equal(m.sample(2, decode=False, weights="ema", **kw), d.sample(2, use_ema=True, **kw))
    assert not np.array_equal(online, d.sample(2, use_ema=True, **kw))
    assert np.array_equal(m.sample_latents(2, weights="ema", progress=True, **kw), d.sample(2, use_ema=True, **kw))
    meta = m.generate(2, str(tmp_path / "g"), weights="ema", progress=False, **kw)
    assert meta["weights"] == "ema"
    with pytest.raises(ValueError, match="weights"):
        m.sample(2, weights="average")
    with pytest.raises(ValueError, match="weights"):
        m.generate(2, str(tmp_path / "h"), weights=None, progress=False)


def test_cli_flags(tmp_path):
    from ubdiff.__main__ import main
    from ubdiff.data import make_dataset
    rng = np.random.default_rng(0)
    make_dataset("flatvel-a", 16, 8, str(tmp_path / "data"), nt=100, progress=False, preview=False,
                 simulate=lambda v, freq, nt, dt: rng.normal(0, 1, (len(v), 5, nt, 70)).astype(np.float32))
    d, run = str(tmp_path / "data"), str(tmp_path / "run")
    base = ["--data", d, "--run", run, "--quiet", "--threads", "1"]
    assert main(["train-autoencoder", *base, "--config", json.dumps(dict(CFG, diffusion=dict(
        DIFF, dim_mults=[1, 2]))), "--epochs", "2", "--batch-size", "4", "--lr", "1e-3", "--lr-decay", "0.5",
        "--lr-milestones", "1", "--lr-warmup-epochs", "1"]) == 0
    assert main(["finetune", *base, "--epochs", "1", "--batch-size", "4", "--lr-rule", "per-epoch"]) == 0
    assert main(["train-diffusion", *base, "--steps", "2", "--batch-size", "4", "--ema", "fixed",
                 "--ema-every", "1", "--ema-decay", "0.9"]) == 0
    out = str(tmp_path / "gen")
    assert main(["generate", "--run", run, "--n", "2", "--out", out, "--sampler", "ddim", "--steps", "2",
                 "--weights", "ema", "--quiet"]) == 0
    m = UBDiff.load(run)
    h = m.history["step1"]
    assert h[0]["lr"] == pytest.approx(1e-3 * 1e-5) and h[1]["lr"] == pytest.approx(1e-3 * 0.5)
    assert m.state["step1"]["lr_milestones"] == [1] and m.state["step2"]["lr_rule"] == "per-epoch"
    assert m.diffusion.ema_rule == make_ema_rule("fixed", update_every=1, beta=0.9)
    with open(os.path.join(out, "ubdiff_dataset.json")) as f:
        assert json.load(f)["weights"] == "ema"
