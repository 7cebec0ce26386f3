"""The paper's orderings at small scale (slow: ``pytest -m slow tests/comparisons``).

One seeded ``ubdiff.compare.run`` at the "small" scale (synthetic FlatVel-A,
m = 512 maps, n = 64 pairs: n << m) trains UB-Diff, UB-Diff w/o opt and the
seismic-first variant (MT-Diffusion too once this build has it), prints its
tables, and the tests check what the paper reports and what should survive the
small scale:

- UB-Diff's seismic reconstruction error on held-out pairs is below w/o opt's
  (its encoder learnt from all m maps, w/o opt's from the n pairs only);
- UB-Diff's FID of both modalities is below MT-Diffusion's (Table 2);
- InversionNet trained on UB-Diff's generated pairs scores a higher SSIM on
  real held-out pairs than trained on w/o opt's (Table 3).

An ordering measured not to hold at this scale is listed in MEASURED_NOT_HOLDING
with the numbers and becomes a strict xfail (it fails loudly if it starts
holding); no threshold is loosened. ``UBDIFF_COMPARE_DIR=DIR`` keeps the
comparison in DIR, so a rerun resumes it instead of training again.
"""
import os

import pytest

from ubdiff.compare import registry

pytestmark = pytest.mark.slow

METHODS = ("ubdiff", "wo_opt", "ubdiff_seismic_first", "mt_diffusion")

#: ordering -> what was measured when it did not hold (seed 0, small scale, full run of
#: `python -m ubdiff compare --scale small` on 2026-12-02, 27 min 41 s on 2 cores; tables in
#: benchmarks/RESULTS.md "Comparing methods at small scale").
MEASURED_NOT_HOLDING = {
    # Both seismic decoders sit near the same floor at this scale (64 pairs; UB-Diff's D_s gets
    # 40 epochs = 160 steps on a frozen E, w/o opt's 52 epochs = 208 joint steps): E learnt from
    # all m maps pays off in velocity (held-out SSIM 0.695 vs 0.650, MSE 0.0324 vs 0.0415; w/o opt
    # overfits its 64 maps: train MSE 0.0220) but not yet in the seismic records.
    "reconstruction": "measured: held-out seismic MSE UB-Diff 0.009083 vs w/o opt 0.009011 "
                      "(MAE 0.03789 vs 0.03661): w/o opt slightly lower at small scale",
    # The decoders, not the latent diffusion, set these FIDs at this scale: the autoencoder's own
    # reconstructions of the 512 real training maps score the same FID as the generated samples
    # (velocity 72.83 vs 72.76 for UB-Diff, 59.69 vs 60.78 for w/o opt;
    # benchmarks/compare_recon_fid.py), so the table compares briefly trained decoders. With 4x the
    # step-1 epochs (48; plan override, same seed) UB-Diff's velocity FID fell to 56.85 (w/o opt
    # 50.36): better, still not below (RESULTS.md "Comparing methods at small scale").
    "fid_velocity": "measured: velocity FID UB-Diff 72.76 vs MT-Diffusion 64.86 (w/o opt 60.78)",
    "fid_seismic": "measured: seismic FID UB-Diff 82.74 vs MT-Diffusion 79.67 (w/o opt 74.46)",
    # Holds once step 1 trains longer: with 48 step-1 epochs UB-Diff pairs gave SSIM 0.5825 against
    # w/o opt's 0.3894. At the default 12 epochs (384 steps) UB-Diff's generated pairs are worse
    # training data than the 64 real pairs themselves.
    "inversionnet_ssim": "measured: InversionNet SSIM on real held-out pairs, trained on UB-Diff pairs "
                         "0.4347 vs on w/o opt pairs 0.4933 (on the 64 real pairs alone 0.4543)",
}


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    from ubdiff import compare
    out = os.environ.get("UBDIFF_COMPARE_DIR") or str(tmp_path_factory.mktemp("cmp") / "small")
    r = compare.run(out, family="flatvel-a", scale="small", methods=",".join(METHODS), seed=0,
                    progress=False, make_figures=False)
    return r["results"]["methods"]


def _ordering(request, key):
    if key in MEASURED_NOT_HOLDING:
        request.applymarker(pytest.mark.xfail(strict=True, reason=MEASURED_NOT_HOLDING[key]))


def _method(res, name):
    ev = res[name]
    if "skipped" in ev:
        pytest.skip(f"{ev['title']} ({name}) cannot run in this build: {ev['skipped']}")
    return ev


def test_ubdiff_reconstructs_heldout_seismic_better_than_wo_opt(comparison, request):
    _ordering(request, "reconstruction")
    a = _method(comparison, "ubdiff")["reconstruction"]["heldout"]
    b = _method(comparison, "wo_opt")["reconstruction"]["heldout"]
    print(f"held-out seismic MSE: UB-Diff {a['seismic_mse']:.5f}, w/o opt {b['seismic_mse']:.5f}")
    assert a["seismic_mse"] < b["seismic_mse"]


@pytest.mark.parametrize("modality", ["velocity", "seismic"])
def test_ubdiff_fid_below_mt_diffusion(comparison, request, modality):
    m, why = registry.status("mt_diffusion")
    if why:
        pytest.skip(f"MT-Diffusion (mt_diffusion) cannot run in this build: {why}")
    _ordering(request, f"fid_{modality}")
    a = _method(comparison, "ubdiff")[modality]["fid"]
    b = _method(comparison, "mt_diffusion")[modality]["fid"]
    print(f"{modality} FID: UB-Diff {a:.3f}, MT-Diffusion {b:.3f}")
    assert a < b


def test_inversionnet_on_ubdiff_pairs_beats_wo_opt_pairs(comparison, request):
    _ordering(request, "inversionnet_ssim")
    a = _method(comparison, "ubdiff")["inversionnet"]
    b = _method(comparison, "wo_opt")["inversionnet"]
    print(f"InversionNet SSIM on real held-out pairs: trained on UB-Diff pairs {a['ssim']:.4f}, "
          f"on w/o opt pairs {b['ssim']:.4f}")
    assert a["ssim"] > b["ssim"]
