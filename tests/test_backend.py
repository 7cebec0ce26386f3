"""The backend table (csrc/backend.h) and the arena every model plans its
memory with (csrc/arena.h), through the binding's backend_info and
arena_exercise."""
import re
from pathlib import Path

import pytest

import ubdiff
from cuda_util import requires_gpu
from ubdiff._native import lib

HEADER = Path(__file__).resolve().parents[1] / "csrc" / "backend.h"


def listed_ops():
    """The entry names of UBD_BACKEND_OPS, read from the header itself."""
    text = HEADER.read_text()
    body = text[text.index("#define UBD_BACKEND_OPS(X)"):text.index("/* clang-format on */")]
    return re.findall(r"\bX\((\w+),", body)


def test_cpu_table_lists_every_entry():
    info = lib.backend_info("cpu")
    assert info["name"] == "cpu" and info["host_memory"] is True
    ops = listed_ops()
    assert info["ops"] == ops  # every entry filled (backend_info raises on a NULL one), in list order
    for op in ("alloc", "free", "zero", "copy", "sync", "conv2d_forward", "batchnorm_backward", "adam_update",
               "init_uniform", "forward_model"):
        assert op in ops
    assert len(ops) == len(set(ops))


def test_device_names():
    assert lib.backend_info("auto")["name"] == ("cuda" if ubdiff.cuda_compiled() and ubdiff.gpu_count() else "cpu")
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'auto', got 'CPU'"):
        lib.backend_info("CPU")
    if not (ubdiff.cuda_compiled() and ubdiff.gpu_count()):
        with pytest.raises(RuntimeError, match="device='cuda'"):
            lib.backend_info("cuda")


@requires_gpu
def test_cuda_table_lists_every_entry():
    info = lib.backend_info("cuda")
    assert info["name"] == "cuda" and info["host_memory"] is False
    assert info["ops"] == listed_ops()


DEVICES = ["cpu", pytest.param("cuda", marks=requires_gpu)]


@pytest.mark.parametrize("device", DEVICES)
def test_arena_plans_aligned_disjoint_zeroed_slices(device):
    sizes = [1, 16, 17, 0, 100, 3]
    total, offs, zeroed = lib.arena_exercise(device, sizes, [0] * len(sizes))
    assert zeroed
    assert offs[3] is None  # an empty slice takes nothing
    spans = sorted((o, o + 4 * n) for o, n in zip(offs, sizes) if n)
    assert all(o % 64 == 0 for o, _ in spans)
    assert all(end <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:]))  # disjoint, in order
    assert spans[0][0] == 0 and total == sum(-(-4 * n // 64) * 64 for n in sizes)


@pytest.mark.parametrize("device", DEVICES)
def test_arena_staging_only_off_the_host(device):
    total, offs, _ = lib.arena_exercise(device, [10, 1000, 10], [0, 1, 0])
    if device == "cpu":  # host memory: inputs are used in place, nothing staged
        assert offs[1] is None and total == 128
    else:
        assert offs[1] is not None and total == 64 + 4032 + 64


def test_arena_binding_must_follow_the_plan():
    with pytest.raises(RuntimeError, match="binding pass asked for slice 1 .* of 128 bytes, the plan has .* of 64"):
        lib.arena_exercise("cpu", [4, 4, 4], [0, 0, 0], [4, 20, 4])
    with pytest.raises(RuntimeError, match="took 2 of 3 planned slices"):
        lib.arena_exercise("cpu", [4, 4, 4], [0, 0, 0], [4, 4])
    with pytest.raises(RuntimeError, match="binding pass asked for slice 2"):
        lib.arena_exercise("cpu", [4, 4], [0, 0], [4, 4, 4])
