"""``python -m ubdiff convert-official`` and ``export-official``: the authors' and
OpenFWI's files <-> ubdiff run folders (registered by ubdiff/cli_pipeline.py).

    python -m ubdiff convert-official --diffusion model-5.pt --out run/ [--weights online]
    python -m ubdiff convert-official --diffusion model-5.pt --autoencoder ft_check_point.pth --out run/
    python -m ubdiff convert-official --inversionnet checkpoint.pth --out invnet.safetensors
    python -m ubdiff export-official --run run/ --autoencoder vsnet.pth --diffusion model-1.pt
"""
from __future__ import annotations

import argparse
import pickle


def _config(text):
    from ..cli_pipeline import _config as config   # preset name, JSON file or JSON text
    return config(text)


def _cmd_convert(args) -> int:
    from . import convert
    if (args.diffusion is None) == (args.inversionnet is None):
        raise SystemExit("convert-official: give --diffusion or --inversionnet (one of them)")
    try:
        if args.inversionnet is not None:
            net = convert.load_inversionnet(args.inversionnet, config=None if args.config is None
                                            else _config(args.config), trust=args.trust)
            net.save(args.out)
            print(f"converted {args.inversionnet} into {args.out}: {net!r}")
            return 0
        ck = convert.inspect(args.diffusion, trust=args.trust)
        m = convert.load(ck, args.autoencoder, weights=args.weights,
                         config=_config(args.config or "paper"), constants=args.constants, trust=args.trust)
    except (OSError, ImportError, ValueError, KeyError, pickle.UnpicklingError) as e:
        raise SystemExit(f"convert-official: {e}")
    m.save(args.out)
    which = "EMA" if args.weights == "ema" and ck.ema is not None else "online"
    print(f"converted {args.diffusion} ({ck.layout}, {ck.model}; {which} weights for sampling"
          + (f", autoencoder from {args.autoencoder}" if args.autoencoder else "") + f") into {args.out}: {m!r}")
    if m.constants.get("data_min") is None:
        print("no --constants given and none recorded: set them (family or dataset folder) before generating")
    return 0


def _cmd_export(args) -> int:
    from . import write
    if args.inversionnet is not None:
        from ..models.inversionnet import InversionNet
        if args.out is None:
            raise SystemExit("export-official: --inversionnet needs --out (.pth or .safetensors)")
        try:
            write.save_inversionnet(InversionNet.load(args.inversionnet), args.out)
        except (OSError, ImportError, ValueError) as e:
            raise SystemExit(f"export-official: {e}")
        print(f"wrote {args.out} (OpenFWI InversionNet)")
        return 0
    if args.run is None or (args.autoencoder is None and args.diffusion is None):
        raise SystemExit("export-official: give --run with --autoencoder and/or --diffusion (or --inversionnet)")
    from ..pipeline import UBDiff
    try:
        written = write.export_files(UBDiff.load(args.run), autoencoder=args.autoencoder, diffusion=args.diffusion)
    except (OSError, ImportError, ValueError) as e:
        raise SystemExit(f"export-official: {e}")
    print("wrote " + ", ".join(written))
    return 0


def register(subparsers) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "convert-official", formatter_class=raw,
        help="the authors' (or OpenFWI's) PyTorch checkpoints -> a ubdiff run folder (no PyTorch needed)",
        description="Read the UB-Diff authors' checkpoints and write a ubdiff run folder: --diffusion a Trainer1D "
                    "model-N.pt (or a UB_Diff / GaussianDiffusion1D / EMA state_dict, .pth or .safetensors); its "
                    "autoencoder part is used unless --autoencoder gives their VSNet checkpoint (train_EncDec.py's "
                    "check_point.pth, fine_tune_Dec_S.py's ft_check_point.pth). Or --inversionnet: OpenFWI's "
                    "train.py checkpoint -> a ubdiff InversionNet file. Schedules other than ours (cosine, T steps) "
                    "are refused. Files hold only tensors, dicts and argparse.Namespace; --trust allows anything "
                    "(needs PyTorch).")
    p.add_argument("--diffusion", default=None, metavar="PTH", help="Trainer1D model-N.pt or a state_dict")
    p.add_argument("--autoencoder", default=None, metavar="PTH", help="their VSNet checkpoint (default: the "
                   "autoencoder inside --diffusion)")
    p.add_argument("--inversionnet", default=None, metavar="PTH", help="OpenFWI InversionNet checkpoint")
    p.add_argument("--out", required=True, metavar="DIR|FILE", help="run folder (or .safetensors for --inversionnet)")
    p.add_argument("--weights", choices=["ema", "online"], default="ema",
                   help="which weights ubdiff samples with: the EMA (default) or the online ones (their "
                        "generation.py's choice); the online weights are always the ones training continues from")
    p.add_argument("--config", default=None, help="paper (default) | small | JSON of the model sizes "
                   "(--inversionnet: default read from the file)")
    p.add_argument("--constants", default=None, metavar="FAMILY|DIR",
                   help="normalisation constants: an OpenFWI family or a ubdiff dataset folder (default: the "
                        "dataset the autoencoder checkpoint's args name)")
    p.add_argument("--trust", action="store_true", help="allow arbitrary pickles (unsafe; needs PyTorch)")
    p.set_defaults(func=_cmd_convert)

    p = subparsers.add_parser(
        "export-official", formatter_class=raw,
        help="a ubdiff run folder -> the authors' layouts (.safetensors, or .pth with PyTorch)",
        description="Write a run folder as the authors' files, loadable with load_state_dict(strict=True): "
                    "--autoencoder VSNet (.pth: {'model': state_dict}, what their UB_Diff(checkpoint_path=...) "
                    "reads; .safetensors: the state_dict), --diffusion UB_Diff (.pt/.pth: a Trainer1D model-N.pt; "
                    ".safetensors: their EMA(UB_Diff) state_dict). --inversionnet: a ubdiff InversionNet file -> "
                    "OpenFWI's layout (--out).")
    p.add_argument("--run", default=None, metavar="DIR", help="ubdiff run folder")
    p.add_argument("--autoencoder", default=None, metavar="FILE", help="VSNet output (.pth or .safetensors)")
    p.add_argument("--diffusion", default=None, metavar="FILE", help="UB_Diff output (.pt/.pth or .safetensors)")
    p.add_argument("--inversionnet", default=None, metavar="FILE", help="ubdiff InversionNet checkpoint")
    p.add_argument("--out", default=None, metavar="FILE", help="output for --inversionnet")
    p.set_defaults(func=_cmd_export)
