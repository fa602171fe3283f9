"""Checkpoints: atomic layout, safe loading, pruning, and exact resume (in-process and after SIGKILL)."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _train_script import NoisyPairs, TinyNet, collate, mse_loss, run
from safetensors.torch import load_file

from vlstudy.data.sampler import ORDER_STREAM
from vlstudy.train.checkpoint import (
    capture_rng_state,
    latest_checkpoint,
    list_checkpoints,
    prune_checkpoints,
    restore_rng_state,
)
from vlstudy.train.logging import JsonlLog, read_log
from vlstudy.train.trainer import TrainConfig, Trainer

SCRIPT = Path(__file__).with_name("_train_script.py")
# 48 items, 4 per micro-batch, 2 micro-batches per step: 6 steps per epoch; checkpoints fall mid-epoch.
RUN = dict(max_steps=16, batch_size=4, grad_accum_steps=2, checkpoint_every=3, dropout=0.3, skip_every=7)


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def _train_records(log: Path) -> list[dict]:
    drop = {"samples_per_s", "elapsed_s"}  # wall-clock figures differ between runs
    return [{k: v for k, v in r.items() if k not in drop} for r in read_log(log) if r["kind"] == "train"]


def test_checkpoint_layout_and_safe_loading(tmp_path):
    run(tmp_path, **RUN)
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step_00000015", "step_00000016"]
    ckpt = latest_checkpoint(tmp_path / "checkpoints")
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "config.json", "model.safetensors", "optimizer.pt", "rng.json", "rng.safetensors", "scheduler.pt",
        "trainer_state.json",
    ]
    weights = load_file(ckpt / "model.safetensors")
    assert not any(name.startswith("text.") for name in weights)  # the frozen tower is not duplicated
    assert "video.1.weight" in weights  # the LayerNorm
    optimizer = torch.load(ckpt / "optimizer.pt", weights_only=True)
    assert optimizer["param_groups"][0]["name"] == "default.decay"
    assert torch.load(ckpt / "scheduler.pt", weights_only=True)["last_epoch"] == 16
    state = json.loads((ckpt / "trainer_state.json").read_text())
    # 16 steps = 2 epochs of 6 + 4 steps (8 of 12 micro-batches of 4) of epoch 2; 7 bad items per epoch
    epoch_2_seen = np.random.default_rng([0, 2, ORDER_STREAM]).permutation(48)[:32]
    assert state == {"step": 16, "epoch": 2, "batch_in_epoch": 8, "elapsed_s": state["elapsed_s"],
                     "skipped_videos": 7 * 2 + int(np.sum(epoch_2_seen % 7 == 0)), "world_size": 1}
    assert json.loads((ckpt / "config.json").read_text())["grad_clip"] == 3.0


def test_in_process_resume_matches_uninterrupted(tmp_path):
    reference = run(tmp_path / "ref", **RUN)
    out = tmp_path / "resumed"
    run(out, **RUN, keep_checkpoints=10)
    # Make it a run that stopped after step 9's checkpoint (epoch 1, mid-epoch): later checkpoints and the export
    # gone, the log still holding steps 10..16, and a temporary folder left by a killed writer.
    for path in list_checkpoints(out / "checkpoints"):
        if path.name > "step_00000009":
            shutil.rmtree(path)
    shutil.rmtree(out / "final")
    (out / "checkpoints" / ".tmp-step_00000012-99").mkdir()
    assert json.loads((out / "checkpoints" / "step_00000009" / "trainer_state.json").read_text())["epoch"] == 1
    summary = run(out, **RUN)
    assert not (out / "checkpoints" / ".tmp-step_00000012-99").exists()
    _assert_same_weights(reference.final_dir, summary.final_dir)
    assert _train_records(out / "train_log.jsonl") == _train_records(reference.log_path)
    assert summary.skipped_videos == reference.skipped_videos


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path):
    reference = run(tmp_path / "ref", **RUN)
    out = tmp_path / "killed"
    args = [f"--{k.replace('_', '-')}={v}" for k, v in RUN.items()]
    with (tmp_path / "stderr.txt").open("w") as stderr:
        proc = subprocess.Popen([sys.executable, str(SCRIPT), str(out), *args, "--step-sleep=0.1"], stderr=stderr)
        deadline = time.monotonic() + 60
        while latest_checkpoint(out / "checkpoints") is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "stderr.txt").read_text()
    killed_at = latest_checkpoint(out / "checkpoints")
    assert killed_at is not None and killed_at.name < "step_00000016" and not (out / "final").exists()

    summary = run(out, **RUN)
    _assert_same_weights(reference.final_dir, summary.final_dir)
    steps = [r["step"] for r in _train_records(out / "train_log.jsonl")]
    assert steps == list(range(1, 17))  # the steps logged after the checkpoint were dropped and redone
    assert _train_records(out / "train_log.jsonl") == _train_records(reference.log_path)


def test_finished_run_returns_at_once(tmp_path):
    first = run(tmp_path, **RUN)
    again = run(tmp_path, **RUN)
    assert again.final_step == 16 and again.samples_per_s == 0.0
    assert again.losses == first.losses and again.skipped_videos == first.skipped_videos
    assert len(_train_records(first.log_path)) == 16


def test_resume_with_another_batch_size_is_refused(tmp_path):
    run(tmp_path, **RUN)
    config = TrainConfig(max_steps=20, batch_size=8, precision="fp32", log_every=1)
    model = TinyNet(0.3)
    model.text.requires_grad_(False)
    trainer = Trainer(model, config, NoisyPairs(48, seed=0), collate, mse_loss, tmp_path)
    with pytest.raises(ValueError, match=r"step_00000016/config.json: batch_size=4 but this run has batch_size=8"):
        trainer.fit()


def test_checkpoint_of_another_model_is_named(tmp_path):
    run(tmp_path, **RUN)
    config = TrainConfig(max_steps=20, batch_size=4, grad_accum_steps=2, precision="fp32")
    trainer = Trainer(TinyNet(0.3), config, NoisyPairs(48, seed=0), collate, mse_loss, tmp_path)
    with pytest.raises(ValueError, match=r"step_00000016/model.safetensors does not match TinyNet: "
                                         r"missing \['text.bias', 'text.weight'\], unexpected \[\]"):
        trainer.fit()


def test_generator_states_round_trip_through_json():
    state = json.loads(json.dumps({k: v for k, v in capture_rng_state().items() if k in ("python", "numpy")}))
    torch_state = capture_rng_state()["torch_cpu"]
    draws = (random.random(), np.random.random(), torch.rand(1).item())
    restore_rng_state({**state, "torch_cpu": torch_state, "torch_cuda": None})
    assert (random.random(), np.random.random(), torch.rand(1).item()) == draws


def test_prune_keeps_the_latest(tmp_path):
    for step in (3, 10, 7):
        (tmp_path / f"step_{step:08d}").mkdir()
    (tmp_path / ".tmp-step_00000012-5").mkdir()
    assert [p.name for p in prune_checkpoints(tmp_path, keep=2)] == ["step_00000003"]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000007", "step_00000010"]
    with pytest.raises(ValueError, match="keep must be >= 1"):
        prune_checkpoints(tmp_path, keep=0)


def test_log_resume_drops_later_steps_and_a_torn_last_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps({"kind": "train", "step": s}) + "\n" for s in range(1, 6)) + '{"kind": "tr')
    with JsonlLog(path, resume_step=3) as log:
        log.write({"kind": "train", "step": 4, "loss": 0.5})
    assert [(r["step"], r.get("loss")) for r in read_log(path)] == [(1, None), (2, None), (3, None), (4, 0.5)]
    path.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"log.jsonl:2: not valid JSON"):
        read_log(path)
