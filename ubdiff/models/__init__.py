"""Models of ubdiff (co-latent autoencoder, 1-D U-Net, ...), C core + thin Python."""
