"""Is the autoencoder or the diffusion what limits a method's FID in a comparison?

    python benchmarks/compare_recon_fid.py COMPARE_DIR [METHOD ...]   (default: ubdiff wo_opt ubdiff_seismic_first)

FID of each method's autoencoder reconstructions of the m real training maps
(velocity: E -> D_v; seismic: E -> D_s) against the same reference features as
its generated samples (ubdiff/compare/evaluate.py), next to the generated
samples' FID from its eval.json. Reconstruction FID close to the generated FID
means the decoders, not the latent diffusion, set the FID. Works on a finished
``python -m ubdiff compare`` folder (methods/<name>/run).
"""
import json
import os
import sys
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import table  # noqa: E402

from ubdiff import metrics as M  # noqa: E402
from ubdiff.compare import evaluate as EV  # noqa: E402
from ubdiff.compare import split as S  # noqa: E402
from ubdiff.compare.methods import _latent  # noqa: E402
from ubdiff.data import Normalizer  # noqa: E402


class _Array:
    """An array in physical units, sliced the way extract_features reads a dataset."""

    def __init__(self, a):
        self.a = a

    def __len__(self):
        return len(self.a)

    def __getitem__(self, sl):
        return self.a[sl]


def recon_fid(root, name, sp, plan, refs, norm, vn):
    ctx = types.SimpleNamespace(plan=plan, device="cpu", seed=0, data=sp, progress=False)
    rv, rs = _latent.reconstructor(ctx, run=os.path.join(root, "methods", name, "run"))(vn)
    fv = M.extract_features(_Array(norm.velocity_inverse(rv)), modality="velocity", batch_size=plan["fid_batch"],
                            data_range=sp.velocity_range)
    fs = M.extract_features(_Array(norm.seismic_inverse(rs)), modality="seismic", batch_size=plan["fid_batch"],
                            data_range=sp.seismic_range)
    return float(M.fid_from_features(refs["velocity"], fv)), float(M.fid_from_features(refs["seismic"], fs))


def main(argv):
    root, names = argv[0], argv[1:] or ["ubdiff", "wo_opt", "ubdiff_seismic_first"]
    cfg = json.load(open(os.path.join(root, "compare.json")))
    plan = cfg["plan"]
    sp = S.open_split(os.path.join(root, "data"), cfg["family"], plan)
    refs = EV.real_features(sp, plan)
    norm = Normalizer(sp.constants)
    vn = norm.velocity(sp.train_velocity.velocity(np.arange(len(sp.train_velocity))))
    rows = []
    for name in names:
        rv, rs = recon_fid(root, name, sp, plan, refs, norm, vn)
        gen = json.load(open(os.path.join(root, "methods", name, "eval.json")))
        rows.append((name, f"{rv:.2f}", f"{gen['velocity']['fid']:.2f}", f"{rs:.2f}", f"{gen['seismic']['fid']:.2f}"))
    print(f"{root}: m = {len(vn)} training maps reconstructed")
    print(table(rows, ["method", "velocity FID recon", "velocity FID generated", "seismic FID recon",
                       "seismic FID generated"]))


if __name__ == "__main__":
    main(sys.argv[1:])
