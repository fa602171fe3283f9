"""FSDP2: which blocks are sharded, 2 gloo processes reproducing 1 process, sharded checkpoints that survive
SIGKILL and resume bit-exactly, and the consolidated export equal to the gathered model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from _train_script import TinyNet, run
from safetensors.torch import load_file
from torch import nn

from vlstudy.models.abstractor import AbstractorBlock, AbstractorConfig
from vlstudy.models.mplug_video import MPLUGVideoConfig, MPLUGVideoModel
from vlstudy.models.text_lm import TextLMConfig, train_char_tokenizer
from vlstudy.models.video_encoder import VideoEncoderConfig
from vlstudy.train.checkpoint import latest_checkpoint, list_checkpoints, trainable_state_dict
from vlstudy.train.logging import read_log
from vlstudy.train.parallel import fsdp_units
from vlstudy.train.trainer import TrainConfig

SCRIPT = Path(__file__).with_name("_train_script.py")
TOLERANCE = 1e-5  # |FSDP loss - one-process loss| per step; measured: < 1e-6 (float sums in another order)
# The resume test's run (as tests/test_resume.py): dropout, bad items, accumulation, checkpoints mid-epoch.
RUN = {"max_steps": 16, "batch_size": 4, "grad_accum_steps": 2, "checkpoint_every": 3, "dropout": 0.3, "skip_every": 7}
RUN_FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in RUN.items()]


def _torchrun(out: Path, *flags: str, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT),
               str(out), "--parallel=fsdp", *flags]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **popen)


def _children(pid: int) -> list[int]:
    """The process ids of the children of `pid` (Linux)."""
    tasks = Path(f"/proc/{pid}/task")
    return [int(child) for task in tasks.iterdir() for child in (task / "children").read_text().split()]


def _finish(proc: subprocess.Popen) -> None:
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-3000:]


def _train_records(log: Path) -> list[dict]:
    drop = {"samples_per_s", "elapsed_s"}  # wall-clock figures differ between runs
    return [{k: v for k, v in r.items() if k not in drop} for r in read_log(log) if r["kind"] == "train"]


def _assert_equal_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name


def test_units_are_the_blocks_of_every_stack():
    config = MPLUGVideoConfig(
        video=VideoEncoderConfig(image_size=32, patch_size=16, num_frames=2, hidden_size=32, num_layers=2, num_heads=2),
        abstractor=AbstractorConfig(num_queries=4, num_heads=2, num_layers=1),
        lm=TextLMConfig(hidden_size=32, num_layers=3, num_heads=2, max_positions=64), max_text_length=16)
    model = MPLUGVideoModel(config, tokenizer=train_char_tokenizer(["视频"]))
    units = fsdp_units(model)
    # in registration order: the video encoder, the abstractor, the LM
    assert [type(u).__name__ for u in units] == ["TimesformerLayer"] * 2 + ["AbstractorBlock"] + ["GPT2Block"] * 3
    assert units[0] is model.video_encoder.timesformer.encoder.layer[0]
    assert units[2] is model.abstractor.blocks[0] and isinstance(units[2], AbstractorBlock)
    assert units[3] is model.lm.transformer.h[0]


def test_units_declared_by_the_model_or_by_no_split_modules():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleList(nn.Linear(2, 2) for _ in range(2))  # nested: not units of their own

    class Declared(nn.Module):
        _no_split_modules = ("Block",)

        def __init__(self):
            super().__init__()
            self.first, self.second = Block(), Block()  # blocks outside any ModuleList
            self.stack = nn.ModuleList([nn.Dropout(), nn.Linear(2, 2)])  # no parameters: not a unit

    model = Declared()
    assert fsdp_units(model) == [model.first, model.second, model.stack[1]]
    model.fsdp_units = lambda: [model.second]
    assert fsdp_units(model) == [model.second]
    with pytest.raises(ValueError, match="parallel must be 'ddp' or 'fsdp', got 'zero'"):
        TrainConfig(parallel="zero")


def test_a_sharded_checkpoint_is_not_loaded_as_a_full_one(tmp_path):
    run(tmp_path, **RUN)
    checkpoint = latest_checkpoint(tmp_path / "checkpoints")
    (checkpoint / "sharded").mkdir()
    with pytest.raises(ValueError, match=r"step_00000016: a sharded \(FSDP\) checkpoint; this run is full-tensor"):
        run(tmp_path, **{**RUN, "max_steps": 20})


@pytest.mark.slow
def test_two_fsdp_processes_match_one_process_and_consolidate(tmp_path):
    fsdp = tmp_path / "fsdp"
    _finish(_torchrun(fsdp, "--loss", "mse", "infonce", "--batch-size=4", "--max-steps=10", "--checkpoint-every=5"))
    for loss, frozen in (("mse", "text.weight"), ("infonce", "head.weight")):
        single = run(tmp_path / "single" / loss, loss=loss, batch_size=8, max_steps=10, checkpoint_every=5)
        ours, one = _train_records(fsdp / loss / "train_log.jsonl"), _train_records(single.log_path)
        assert [r["step"] for r in ours] == [r["step"] for r in one] == list(range(1, 11))
        for a, b in zip(ours, one):
            for key in [k for k in b if k.startswith("loss")]:
                assert a[key] == pytest.approx(b[key], abs=TOLERANCE), (loss, b["step"], key)
            # the norm over sharded and whole (0-d) gradients; above grad_clip=3, so clipping acts on these steps
            assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=TOLERANCE), (loss, b["step"])
        assert max(r["grad_norm"] for r in one) > 3.0
        # the checkpoints are sharded: every rank wrote its own file, no full-tensor copy of the model
        last = list_checkpoints(fsdp / loss / "checkpoints")[-1]
        assert last.name == "step_00000010" and not (last / "model.safetensors").exists()
        assert sorted(p.name for p in (last / "sharded").iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
        # the consolidated export is the gathered model, frozen tower included, and close to the one-process model
        consolidated = load_file(fsdp / loss / "final" / "model.safetensors")
        _assert_equal_tensors(consolidated, load_file(fsdp / loss / "gathered.safetensors"))
        assert frozen in consolidated
        reference = load_file(single.final_dir / "model.safetensors")
        for name in reference:
            torch.testing.assert_close(consolidated[name], reference[name], rtol=0, atol=TOLERANCE)
        # the last sharded checkpoint read into a plain model in one process (docs/distributed.md's recipe)
        model = TinyNet(0.0)
        (model.text if loss == "mse" else model.head).requires_grad_(False)
        state = {"model": trainable_state_dict(model)}
        dcp.load(state, checkpoint_id=last / "sharded")
        for name, tensor in state["model"].items():
            assert torch.equal(tensor, consolidated[name]), name
    infonce = _train_records(fsdp / "infonce" / "train_log.jsonl")
    assert infonce[-1]["loss"] < 0.5 * infonce[0]["loss"]  # the loss moved, so matching trajectories compare something


@pytest.mark.slow
def test_fsdp_sigkill_after_a_sharded_checkpoint_then_resume_is_bit_identical(tmp_path):
    reference = _torchrun(tmp_path / "ref", *RUN_FLAGS)
    killed = tmp_path / "killed"
    proc = _torchrun(killed, *RUN_FLAGS, "--step-sleep=0.1")
    deadline = time.monotonic() + 120
    while latest_checkpoint(killed / "checkpoints") is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    # torchrun starts each worker in a session of its own: kill the workers and torchrun together, like a lost node
    for pid in [*_children(proc.pid), proc.pid]:
        os.kill(pid, signal.SIGKILL)
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr[-3000:]
    killed_at = latest_checkpoint(killed / "checkpoints")
    assert killed_at is not None and killed_at.name < "step_00000016" and not (killed / "final").exists()
    assert json.loads((killed_at / "trainer_state.json").read_text())["world_size"] == 2
    _finish(reference)

    _finish(_torchrun(killed, *RUN_FLAGS))
    _assert_equal_tensors(load_file(tmp_path / "ref" / "final" / "model.safetensors"),
                          load_file(killed / "final" / "model.safetensors"))
    records = _train_records(killed / "train_log.jsonl")
    assert [r["step"] for r in records] == list(range(1, 17))
    assert records == _train_records(tmp_path / "ref" / "train_log.jsonl")
