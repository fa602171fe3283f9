"""benchmarks/precision_cost.py: it reads the CPU's bf16 instructions from /proc/cpuinfo, and its bf16 arm really
runs the step under bf16 autocast (the loss moves by bf16 rounding, not more) while the fp32 arm is plain float32."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "precision_cost.py"
_spec = importlib.util.spec_from_file_location("precision_cost", SCRIPT)
bench = sys.modules["precision_cost"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_cpu_bf16_flags_reads_the_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile "
                       "amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert bench.cpu_bf16_flags(cpuinfo) == ["avx512_bf16", "amx_bf16", "amx_tile"]
    cpuinfo.write_text("flags\t\t: fpu sse avx2 avx512f\n")
    assert bench.cpu_bf16_flags(cpuinfo) == []
    assert bench.cpu_bf16_flags(tmp_path / "missing") == []


def test_bf16_arm_autocasts_and_fp32_arm_does_not():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
    x = torch.randn(32, 64)
    dtypes = []

    def loss_fn(m):
        hidden = m[0](x)
        dtypes.append(hidden.dtype)
        return m[2](m[1](hidden)).float().pow(2).mean()

    result = bench.time_steps(model, loss_fn, steps=2)
    assert set(result) == {"fp32", "bf16"} and all(r["step_seconds"] > 0 for r in result.values())
    # the losses from the same starting weights: bf16 rounding moves it, by far less than the loss itself
    fp32, bf16 = result["fp32"]["loss"], result["bf16"]["loss"]
    assert fp32 != bf16 and abs(fp32 - bf16) < 0.05 * abs(fp32)
    # first the two loss-only forwards (fp32, bf16), then the timed steps alternating fp32, bf16
    assert dtypes[:2] == [torch.float32, torch.bfloat16]
    assert dtypes[2:] == [torch.float32, torch.bfloat16] * 3  # a warm-up round and two timed ones
    with torch.no_grad():
        loss_fn(model)
    assert dtypes[-1] == torch.float32  # no autocast left behind
