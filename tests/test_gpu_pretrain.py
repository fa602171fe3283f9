"""benchmarks/gpu_pretrain.py: the paper-size model it builds, its FLOP count, and a tiny run on the CPU (so the
GPU benchmark cannot rot where no GPU is)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_pretrain.py"
_spec = importlib.util.spec_from_file_location("gpu_pretrain", SCRIPT)
bench = sys.modules["gpu_pretrain"] = importlib.util.module_from_spec(_spec)  # dataclasses look their module up
_spec.loader.exec_module(bench)


def test_paper_size_model():
    with torch.device("meta"):  # no storage: 1.4B parameters in a blink
        model = bench.build_model(bench.BenchSize())
    lm = sum(p.numel() for p in model.lm.parameters())
    assert 1.2e9 < lm < 1.35e9  # GPT-3 XL shape: "1.3B"
    assert not any(p.requires_grad for p in model.lm.parameters())
    timesformer = model.video_encoder.timesformer.config
    assert (timesformer.hidden_size, timesformer.num_hidden_layers, timesformer.num_attention_heads,
            timesformer.patch_size, timesformer.image_size, timesformer.num_frames) == (768, 12, 12, 16, 224, 8)
    assert model.config.abstractor.num_queries == 128
    assert 120e6 < model.num_trainable < 160e6  # video encoder + abstractor + heads


def test_bf16_peaks_by_device_name():
    assert bench.bf16_peak("NVIDIA H100 80GB HBM3") == bench.bf16_peak("NVIDIA H200") == 989.4e12
    assert bench.bf16_peak("NVIDIA H100 PCIe") == 756.0e12
    assert bench.bf16_peak("NVIDIA A100-SXM4-80GB") == 312.0e12
    assert bench.bf16_peak("Tesla T4") is None


def test_tiny_run_on_the_cpu_reports_its_figures(tmp_path, capsys):
    figures = bench.main(["--tiny", "--steps", "2", "--warmup", "1", "--json", str(tmp_path / "tiny.json")])
    assert json.loads((tmp_path / "tiny.json").read_text()) == pytest.approx(figures)
    assert figures["processes"] == 1 and figures["samples_per_s"] > 0 and figures["mfu"] is None
    assert "samples/s" in capsys.readouterr().out
    # the counted step is forward + backward of a model whose LM is frozen: between 2x and 3x its forward FLOPs
    # (trainable layers also need weight gradients, the frozen LM only input gradients)
    torch.manual_seed(0)
    model = bench.build_model(bench.TINY)
    video, batch = bench._inputs(model, bench.TINY, torch.device("cpu"))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:  # forward only
        bench._caption_loss(model, video, batch)
    assert 2.0 < figures["flops_per_step"] / counter.get_total_flops() < 3.0


def test_flops_per_clip_extrapolated_in_lm_depth_equals_the_direct_count():
    size = bench.dataclasses.replace(bench.TINY, batch=1, lm_layers=4)
    forward, step = bench.flops_per_clip(size)
    torch.manual_seed(0)
    model = bench.build_model(size)
    video, batch = bench._inputs(model, size, torch.device("cpu"))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        loss = bench._caption_loss(model, video, batch)
        assert counter.get_total_flops() == forward
        loss.backward()
    assert counter.get_total_flops() == step


@pytest.mark.slow
def test_tiny_fsdp_run_under_torchrun(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT),
               "--tiny", "--parallel", "fsdp", "--steps", "2", "--warmup", "1", "--json", str(tmp_path / "f.json")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "f.json").read_text())
    assert figures["processes"] == 2 and figures["samples_per_s"] > 0
