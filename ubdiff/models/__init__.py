"""Models of ubdiff (C core; these classes own the C objects)."""
from .diffusion import LatentDiffusion  # noqa: F401
