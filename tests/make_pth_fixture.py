"""Writes tests/data/torch_pickle_fixture.pth with torch.save (needs PyTorch; run once).

    python tests/make_pth_fixture.py [OUT]

The file lets the default test suite check ubdiff's torch-free .pth reader on
bytes PyTorch really wrote. It holds every construct the UB-Diff authors' and
OpenFWI's checkpoints use, in their nesting: a module state_dict (an
OrderedDict with _metadata, BatchNorm's int64 num_batches_tracked), an AdamW
state_dict, a scheduler state (torch's MultiStepLR: a Counter), argparse.Namespace
args, None, and tensors of several dtypes, views with offsets and strides, one
storage shared by two keys, and an nn.Parameter. Values are simple formulas
(``expected()`` in tests/test_official_pth.py repeats them in NumPy).
"""
import argparse
import copy
import os
import sys


def build(torch):
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(2, 3, (3, 1)), nn.BatchNorm2d(3))
    with torch.no_grad():
        net[0].weight.copy_(torch.arange(18, dtype=torch.float32).reshape(3, 2, 3, 1) / 8)
        net[0].bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
        net[1].weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
        net[1].running_mean.copy_(torch.tensor([0.5, 0.25, 0.125]))
        net[1].num_batches_tracked.fill_(7)
    state = copy.deepcopy(net.state_dict())   # before the optimiser step moves the weights
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[10, 20], gamma=0.98)
    args = argparse.Namespace(dataset="flatvel-a", lr=1e-4, lr_milestones=[10, 20], resume=None, fault_fam=False,
                              sample_temporal=1, epochs=3)
    shared = torch.arange(4, dtype=torch.float32) * 0.5
    base = torch.arange(12, dtype=torch.float64)
    return {
        "model": state,
        "optimizer": opt.state_dict(),
        "lr_scheduler": sched.state_dict(),
        "epoch": 2,
        "step": 12,
        "args": args,
        "scaler": None,
        "tensors": {
            "bf16": torch.arange(4, dtype=torch.bfloat16) - 1.5,
            "f16": torch.tensor([0.5, -2.0], dtype=torch.float16),
            "i64_scalar": torch.tensor(7),
            "i32": torch.tensor([1, -2, 3], dtype=torch.int32),
            "i8": torch.tensor([-3, 4], dtype=torch.int8),
            "u8": torch.tensor([200, 1], dtype=torch.uint8),
            "bool": torch.tensor([True, False]),
            "strided": base[1::4],                      # offset 1, stride 4 into a 12-element storage
            "transposed": base.reshape(3, 4).t(),       # stride (1, 4)
            "empty": torch.zeros(0, 3),
            "shared_a": shared, "shared_b": shared,     # one storage, two keys (as unet. / diffusion.model.)
            "parameter": nn.Parameter(torch.full((2, 2), 0.25)),
        },
        "ema": {"initted": torch.Tensor([True]), "step": torch.tensor([12])},   # as ema-pytorch 0.2.3 registers them
    }


def main(out=None):
    import torch
    out = out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "torch_pickle_fixture.pth")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    torch.save(build(torch), out)
    print(f"wrote {out} ({os.path.getsize(out)} bytes) with torch {torch.__version__}")
    return out


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
