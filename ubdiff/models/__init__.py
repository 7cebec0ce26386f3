"""Models of ubdiff (co-latent autoencoder, 1-D U-Net latent diffusion, InversionNet, 2-D U-Net, and the
pixel-space DDPM on velocity maps around it).
C core; these classes own the C objects and expose NumPy views."""
from .autoencoder import CoLatentAutoencoder  # noqa: F401
from .ddpm import VelocityDDPM  # noqa: F401
from .diffusion import LatentDiffusion  # noqa: F401
from .inversionnet import InversionNet  # noqa: F401
from .unet2d import UNet2D  # noqa: F401
