"""The files the UB-Diff authors' and OpenFWI's PyTorch code write, read and
written by ubdiff -- no PyTorch needed to read them.

    from ubdiff import official
    m = official.load("model-5.pt")                         # Trainer1D checkpoint: U-Net + autoencoder
    m = official.load("model-5.pt", "ft_check_point.pth", weights="online")
    net = official.load_inversionnet("checkpoint.pth")      # OpenFWI train.py checkpoint
    official.export_files(m, autoencoder="vsnet.pth", diffusion="model-1.pt")
    official.inspect("model-5.pt")                          # layout, model, keys, step / epoch / args

- :mod:`.layouts`: what their code saves, key by key, and the recognition of
  each layout (Trainer1D, EMA, training-script dicts, bare and DataParallel
  state_dicts, OpenFWI legacy names).
- :mod:`.pth`: ``.pth`` files as NumPy, through a restricted unpickler when
  PyTorch is absent (tensors, dicts and argparse.Namespace only).
- :mod:`.convert`: their files into ubdiff models (strict).
- :mod:`.write`: ubdiff models into their layouts (strict-loadable by their modules).
"""
from .convert import (check_schedule, inspect, inversionnet_config, load, load_into, load_inversionnet, read,
                      schedule_buffers)
from .write import (ema_state_dict, export, export_files, inversionnet_state_dict, save_inversionnet,
                    trainer_checkpoint, ub_diff_state_dict, vsnet_state_dict)
from .layouts import SCHEDULE_BUFFERS, Checkpoint, diffusion_part, parse, vsnet_part
from .pth import load_numpy, read_pth, save_pth


def unwrap_autoencoder(obj) -> dict:
    """A VSNet state_dict from what torch.load returned (any layout of .layouts)."""
    return vsnet_part(parse(obj, "autoencoder checkpoint"), "online")


def unwrap_diffusion(obj) -> tuple:
    """(GaussianDiffusion1D state_dict, EMA state_dict or None) from torch.load's result."""
    ck = parse(obj, "diffusion checkpoint")
    return diffusion_part(ck, "online"), (diffusion_part(ck, "ema") if ck.ema is not None else None)


__all__ = ["Checkpoint", "SCHEDULE_BUFFERS", "check_schedule", "diffusion_part", "ema_state_dict", "export",
           "export_files", "inspect", "inversionnet_config", "inversionnet_state_dict", "load", "load_into",
           "load_inversionnet", "load_numpy", "parse", "read", "read_pth", "save_inversionnet", "save_pth",
           "schedule_buffers", "trainer_checkpoint", "ub_diff_state_dict", "unwrap_autoencoder",
           "unwrap_diffusion", "vsnet_part", "vsnet_state_dict"]
