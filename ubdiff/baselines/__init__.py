"""Baselines of the paper's comparisons (issue 11) that need networks UB-Diff
does not have: a seismic encoder (ubdiff.models.seis_encoder).

* :class:`SDSeismic` — single-modality latent diffusion on seismic records.
* :class:`MTDiffusion` — our reading of MT-Diffusion (Chen et al. 2024).

Both work on normalised data ([-1, 1], ubdiff.data.Normalizer); the compare
methods (ubdiff/compare/methods/) convert to and from physical units.
"""
from .mt_diffusion import MTDiffusion  # noqa: F401
from .sd_seismic import SDSeismic  # noqa: F401
