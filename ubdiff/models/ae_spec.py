"""Configurations and the parameter table of the co-latent autoencoder.

The table itself (names, shapes, groups, order) is built by the C core
(csrc/models/ae_layout.c) — the one source of truth; this module only names
configurations and reads the table, allocating nothing.

Tensor names are the PyTorch ``state_dict`` keys of the UB-Diff authors'
``VSNet`` (the TDecoder_S version, github.com/junhuanyang/UB-Diff), e.g.
``encoder.convBlock1_1.layers.0.weight``, ``fc_s.weight``,
``batch_norm_v.running_mean``, ``decoder_v.deconvBlock6.layers.1.bias``,
``decoder_s.decoder.blocks.0.attn.qkv.weight``, ``decoder_s.mlp.weight``.
Their unused ``decoder_s.decoder.head`` (Linear 640->1000) is left out.

Configurations
--------------
``paper``  the published model: E 2,167,648; D_v 2,556,771; D_s 236,250,160;
           241,075,187 parameters in all (heads: 16,768 + 83,840).
``small``  for laptops, CI and demos: widths 8/16/32/64, z of 32, head width 16
           (transformer width 5*16 = 80, 4 heads, MLP 160) and the seismic time
           axis subsampled 1000 -> 250 (every 4th sample, as OpenFWI loaders
           do with ``data[:, :, ::4]``); 7,456,447 parameters, 7.0 M of them in
           the final Linear of D_s.
Any key may be overridden: ``make_config("small", nt=200, max_batch=4)``.
"""
from __future__ import annotations

from .._native import lib

#: Keys of a configuration (all ints). ``max_batch`` sizes the activations.
CONFIG_KEYS = ("dim1", "dim2", "dim3", "dim4", "latent", "head_width", "dd_v", "shots", "nt", "nr", "heads",
               "depth", "mlp_hidden", "max_batch")

#: The paper's configuration (read from the C core's defaults).
PAPER = dict(lib.ae_default_config())

SMALL = dict(PAPER, dim1=8, dim2=16, dim3=32, dim4=64, latent=32, head_width=16, heads=4, mlp_hidden=160,
             nt=250, max_batch=16)

CONFIGS = {"paper": PAPER, "small": SMALL}

#: Exact parameter counts of the paper configuration (shared/specs/paper_config.md).
PAPER_COUNTS = {"encoder": 2_167_648, "head_v": 16_768, "decoder_v": 2_556_771, "head_s": 83_840,
                "decoder_s": 236_250_160, "total": 241_075_187}

GROUPS = ("encoder", "head_v", "decoder_v", "head_s", "decoder_s")


def make_config(config="paper", **overrides) -> dict:
    """A full configuration dict from a preset name or a (partial) dict, plus overrides."""
    if isinstance(config, str):
        try:
            base = CONFIGS[config]
        except KeyError:
            raise ValueError(f"unknown autoencoder config {config!r}; choose from {sorted(CONFIGS)} "
                             "or pass a dict") from None
        cfg = dict(base)
    elif isinstance(config, dict):
        cfg = dict(PAPER)
        cfg.update(config)
    else:
        raise TypeError(f"config must be a preset name or a dict, got {type(config).__name__}")
    cfg.update(overrides)
    unknown = sorted(set(cfg) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown autoencoder config keys {unknown}; known: {list(CONFIG_KEYS)}")
    return {k: cfg[k] for k in CONFIG_KEYS}


def spec(config="paper") -> dict:
    """{'params': [(name, shape, offset, group)], 'buffers': [(name, shape, offset)],
    'groups': [(group, offset, size)]} of a configuration; allocates nothing."""
    return lib.ae_spec(make_config(config))


def param_spec(config="paper") -> list:
    """[(name, shape)] of the trainable tensors, in buffer order."""
    return [(n, s) for n, s, _, _ in spec(config)["params"]]


def count_parameters(config="paper") -> dict:
    """Parameters per group and 'total' (BatchNorm running statistics excluded)."""
    counts = {g: n for g, _, n in spec(config)["groups"]}
    counts["total"] = sum(counts[g] for g in GROUPS)
    return counts


def torch_aliases(config="paper") -> dict:
    """{alias: name} for the duplicate keys of the authors' state_dict: their
    Encoder_v registers its blocks again as module_list1 (blocks 1_1..5_2) and
    module_list2 (6_1..8), and some versions of Decoder_V as ``blocks``
    (deconvBlock1_1..5_2). Used when loading their checkpoints."""
    enc = ["1_1", "1_2", "2_1", "2_2", "3_1", "3_2", "4_1", "4_2", "5_1", "5_2", "6_1", "6_2", "7_1", "7_2", "8"]
    dec = ["1_1", "1_2", "2_1", "2_2", "3_1", "3_2", "4_1", "4_2", "5_1", "5_2"]
    s = spec(config)
    names = [n for n, *_ in s["params"]] + [n for n, *_ in s["buffers"]]
    out = {}
    for name in names:
        for i, b in enumerate(enc):
            pre = f"encoder.convBlock{b}."
            if name.startswith(pre):
                lst, j = ("module_list1", i) if i < 10 else ("module_list2", i - 10)
                out[f"encoder.{lst}.{j}." + name[len(pre):]] = name
        for i, b in enumerate(dec):
            pre = f"decoder_v.deconvBlock{b}."
            if name.startswith(pre):
                out[f"decoder_v.blocks.{i}." + name[len(pre):]] = name
    return out


def time_stride(config) -> int:
    """Subsampling step k of the seismic time axis (OpenFWI's 1000 samples -> nt = 1000 // k)."""
    nt = make_config(config)["nt"]
    if 1000 % nt:
        raise ValueError(f"nt = {nt} does not divide 1000; subsample the records yourself")
    return 1000 // nt
