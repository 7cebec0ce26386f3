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

#: ordering -> what was measured when it did not hold (seed 0, small scale: `python -m ubdiff
#: compare --scale small`, 2026-12-02, 35 min 42 s on 2 cores; tables and diagnosis in
#: benchmarks/RESULTS.md "Comparing methods at small scale").
MEASURED_NOT_HOLDING = {
    # Both seismic decoders sit at the same floor at this scale (64 pairs; UB-Diff's D_s gets
    # 40 epochs = 160 steps on a frozen E, w/o opt's 88 epochs = 352 joint steps): E learnt from
    # all m maps pays off in velocity (held-out SSIM 0.746 vs 0.660, MSE 0.0164 vs 0.0395; w/o opt
    # overfits its 64 maps: train MSE 0.0191) but not in the seismic records.
    "reconstruction": "measured: held-out seismic MSE UB-Diff 0.009087 vs w/o opt 0.009017 "
                      "(MAE 0.03808 vs 0.03566): w/o opt slightly lower at small scale",
    # The decoders, not the latent diffusion, set the FIDs at this scale: the autoencoder's own
    # reconstructions of the 512 real training maps score about the generated samples' FID
    # (seismic 81.91 vs 84.36 for UB-Diff, 68.73 vs 69.97 for w/o opt;
    # benchmarks/compare_recon_fid.py), so the seismic column compares D_s after 160 steps of step 2
    # (UB-Diff) with D_s trained jointly for longer (MT-Diffusion: 88 epochs end to end).
    "fid_seismic": "measured: seismic FID UB-Diff 84.36 vs MT-Diffusion 79.95 (w/o opt 69.97)",
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
