"""Evaluation metrics for generated velocity / seismic pairs.

- distribution distances: frechet_distance, fid_from_features, kid_from_features,
  and fid / kid on samples through a feature callable or, by default, ubdiff's
  reference feature network of the modality (FeatureNet, featnet module);
- pairwise (InversionNet-style, OpenFWI convention): ssim, mae, mse;
- usefulness (paper Table 3): InversionNet trained on generated pairs, tested on real;
- physics consistency of generated pairs against a wave-equation simulation;
- report writing (JSON, Markdown, PNG figures).
"""
from .distance import KIDResult, fid_from_features, frechet_distance, gaussian_stats, kid_from_features, mmd2
from .featnet import FeatureNet
from .generative import NO_FEATURES_MSG, default_features, extract_features, feature_network_info, fid, kid
from .pairwise import mae, mse, ssim, ssim_map
from .physics import physics_consistency, plot_worst_pairs, summarize
from .usefulness import inversion_usefulness, open_pairs_folder, plot_inversion_examples
from .report import plot_histograms, plot_seismic_grid, plot_velocity_grid, write_report

__all__ = [
    "frechet_distance", "fid_from_features", "kid_from_features", "gaussian_stats", "mmd2", "KIDResult",
    "fid", "kid", "extract_features", "NO_FEATURES_MSG", "default_features", "feature_network_info",
    "FeatureNet",
    "ssim", "ssim_map", "mae", "mse",
    "physics_consistency", "plot_worst_pairs", "summarize",
    "inversion_usefulness", "open_pairs_folder", "plot_inversion_examples",
    "write_report", "plot_velocity_grid", "plot_seismic_grid", "plot_histograms",
]
