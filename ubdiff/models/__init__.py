"""Models of ubdiff (co-latent autoencoder, 1-D U-Net diffusion, InversionNet), C core + thin Python."""
from .autoencoder import CoLatentAutoencoder  # noqa: F401
from .diffusion import LatentDiffusion  # noqa: F401
from .inversionnet import InversionNet  # noqa: F401
