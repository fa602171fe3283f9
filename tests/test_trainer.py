"""The trainer on a tiny model: learning, accumulation, epochs vs steps, precision, eval modes, NaN stop, log/figure."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from _train_script import NoisyPairs, TinyNet, collate, mse_loss, run
from safetensors.torch import load_file

from vlstudy.config import ParamError, from_dict
from vlstudy.train.checkpoint import latest_checkpoint, list_checkpoints
from vlstudy.train.logging import WALL_CLOCK_FIELDS, loss_curve, publish_log, read_log
from vlstudy.train.trainer import NonFiniteLossError, TrainConfig, Trainer


def _config(**overrides) -> TrainConfig:
    base = dict(lr=1e-2, min_lr=1e-3, warmup_steps=2, max_steps=6, batch_size=8, log_every=1, precision="fp32")
    return TrainConfig(**(base | overrides))


def _train_losses(log: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_log(log) if r["kind"] == "train"}


def test_loss_goes_down_and_the_run_is_logged(tmp_path):
    summary = run(tmp_path, max_steps=30, skip_every=7)
    records = read_log(summary.log_path)
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 31))
    first, last = sum(r["loss"] for r in train[:5]) / 5, sum(r["loss"] for r in train[-5:]) / 5
    assert last < 0.5 * first
    # warmup from 0 over 2 steps, then cosine to min_lr: the lr a step used is logged with it
    assert [train[i]["lr/default.decay"] for i in range(3)] == pytest.approx([0.0, 5e-3, 1e-2])
    assert set(train[0]) >= {"epoch", "loss", "lr/default.no_decay", "grad_norm", "samples_per_s", "elapsed_s"}
    # 48 items, 7 of them bad (indices 0, 7, ..., 42): each epoch of 6 batches of 8 sees all 7
    assert train[5]["skipped_videos"] == 7 and train[5]["epoch"] == 0 and train[6]["epoch"] == 1
    assert summary.skipped_videos == 5 * 7
    assert summary.final_step == 30 and summary.losses["loss"] == train[-1]["loss"]
    assert summary.samples_per_s > 0
    exported = load_file(summary.final_dir / "model.safetensors")
    assert "text.weight" in exported  # the full model, frozen tower included
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step_00000030"]


def test_published_log_is_the_same_bytes_for_the_same_training(tmp_path):
    # a stage's output folder is a DVC dependency: the log it publishes must not carry the run's timings
    fast, slow = run(tmp_path / "fast", max_steps=6), run(tmp_path / "slow", max_steps=6, step_sleep=0.02)
    timed_fast, timed_slow = read_log(fast.log_path), read_log(slow.log_path)
    assert [r["elapsed_s"] for r in timed_fast] != [r["elapsed_s"] for r in timed_slow]
    publish_log(fast.log_path, tmp_path / "fast.jsonl")
    publish_log(slow.log_path, tmp_path / "slow.jsonl")
    assert (tmp_path / "fast.jsonl").read_bytes() == (tmp_path / "slow.jsonl").read_bytes()
    published = read_log(tmp_path / "fast.jsonl")
    assert published == [{k: v for k, v in r.items() if k not in WALL_CLOCK_FIELDS} for r in timed_fast]
    assert len(published) == 6 and {"loss", "grad_norm", "lr/default.decay"} <= set(published[0])


def test_gradient_accumulation_matches_a_bigger_batch(tmp_path):
    big = run(tmp_path / "big", batch_size=8, max_steps=8)
    accumulated = run(tmp_path / "accum", batch_size=4, grad_accum_steps=2, max_steps=8)
    a, b = _train_losses(big.log_path), _train_losses(accumulated.log_path)
    assert a.keys() == b.keys() == set(range(1, 9))
    assert all(a[s] == pytest.approx(b[s], abs=1e-5) for s in a)


class RecordingDataset(NoisyPairs):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.epochs_seen: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.epochs_seen.append(epoch)


def test_epochs_define_the_length_unless_max_steps_is_set(tmp_path):
    data = RecordingDataset(48, seed=0)  # 6 global batches of 8; 2 micro-batches per step → 3 steps per epoch
    config = _config(max_steps=None, epochs=2, batch_size=8, grad_accum_steps=2)
    trainer = Trainer(TinyNet(0.0), config, data, collate, mse_loss, tmp_path / "epochs")
    assert (trainer.steps_per_epoch, trainer.max_steps) == (3, 6)
    assert trainer.fit().final_step == 6
    assert data.epochs_seen == [0, 1]
    config = _config(max_steps=7, epochs=2, batch_size=8, grad_accum_steps=2)
    data.epochs_seen.clear()
    assert Trainer(TinyNet(0.0), config, data, collate, mse_loss, tmp_path / "steps").fit().final_step == 7
    assert data.epochs_seen == [0, 1, 2]


def test_too_small_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"has 6 items: fewer than one optimizer step of 8 \(batch_size 4 x 1 "):
        Trainer(TinyNet(0.0), _config(batch_size=4, grad_accum_steps=2), NoisyPairs(6, seed=0), collate, mse_loss,
                tmp_path)


def test_config_checks_and_from_dict():
    section = {"lr": 2e-5, "warmup_steps": 100, "max_steps": 1000, "lr_scale": {"video_encoder": 0.1},
               "betas": [0.9, 0.98]}
    config = from_dict(TrainConfig, section, "params.yaml: finetune.train")
    assert config.betas == (0.9, 0.98) and config.lr_scale == {"video_encoder": 0.1} and config.grad_clip == 3.0
    assert (config.weight_decay, config.precision) == (0.05, "auto")
    with pytest.raises(ParamError, match="params.yaml: t: warmup_steps 10 exceeds max_steps 5"):
        from_dict(TrainConfig, {"warmup_steps": 10, "max_steps": 5}, "params.yaml: t")
    with pytest.raises(ParamError, match=r"params.yaml: t.precision: expected one of \['auto', 'fp32', 'bf16'\]"):
        from_dict(TrainConfig, {"precision": "fp16"}, "params.yaml: t")
    with pytest.raises(ValueError, match="min_lr <= lr"):
        TrainConfig(lr=1e-5, min_lr=1e-4)


def test_precision_auto_is_fp32_on_cpu_and_bf16_autocasts(tmp_path):
    dtypes = []

    def loss_fn(model, batch):
        out = model(batch["x"])
        dtypes.append(out.dtype)
        return {"loss": (out.float() - batch["y"]).pow(2).mean()}

    data = NoisyPairs(16, seed=0)
    for precision in ("auto", "bf16"):
        Trainer(TinyNet(0.0), _config(precision=precision, max_steps=2), data, collate, loss_fn,
                tmp_path / precision).fit()
    assert dtypes == [torch.float32] * 2 + [torch.bfloat16] * 2


class FrozenPart(TinyNet):
    """TinyNet whose text tower is frozen and kept in eval mode by its builder."""

    def __init__(self) -> None:
        super().__init__(dropout=0.1)
        self.text.requires_grad_(False).eval()


def test_eval_runs_in_eval_mode_and_restores_each_module_mode(tmp_path):
    calls = []

    def eval_fn(model, step):
        calls.append((step, model.training, torch.is_grad_enabled()))
        return {"mse": float(step)}

    model = FrozenPart()
    config = _config(max_steps=5, eval_every=2)
    summary = Trainer(model, config, NoisyPairs(16, seed=0), collate, mse_loss, tmp_path, eval_fn).fit()
    assert calls == [(2, False, False), (4, False, False), (5, False, False)]
    assert model.training and model.video.training and not model.text.training
    assert summary.metrics == {"mse": 5.0}
    evals = [r for r in read_log(summary.log_path) if r["kind"] == "eval"]
    assert [(r["step"], r["mse"]) for r in evals] == [(2, 2.0), (4, 4.0), (5, 5.0)]


def test_gradient_checkpointing_needs_the_model_hook(tmp_path):
    with pytest.raises(ValueError, match="gradient_checkpointing=True but TinyNet has neither activation_checkpoi"):
        Trainer(TinyNet(0.0), _config(gradient_checkpointing=True), NoisyPairs(16, seed=0), collate, mse_loss, tmp_path)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    calls = 0

    def loss_fn(model, batch):
        nonlocal calls
        calls += 1
        loss = mse_loss(model, batch)["loss"]
        return {"loss": loss * math.nan if calls == 7 else loss}

    model = TinyNet(0.0)
    trainer = Trainer(model, _config(max_steps=10, checkpoint_every=3), NoisyPairs(32, seed=0), collate, loss_fn,
                      tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"^loss is nan at step 7 \(epoch 1\); stopped before the update; "
                                                 r"last good checkpoint: .*step_00000006$"):
        trainer.fit()
    assert latest_checkpoint(tmp_path / "checkpoints").name == "step_00000006"
    assert not (tmp_path / "final").exists()
    assert max(r["step"] for r in read_log(tmp_path / "train_log.jsonl")) == 6
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_loss_curve_is_drawn_from_the_log(tmp_path):
    summary = run(tmp_path, loss="infonce", max_steps=6)
    fig, table = loss_curve(summary.log_path)
    assert list(table["step"]) == list(range(1, 7))
    assert {"loss", "loss_v2t", "loss_t2v", "lr/default.decay"} <= set(table.columns)
    loss_ax, lr_ax = fig.axes
    assert [line.get_label() for line in loss_ax.get_lines()] == ["loss", "loss_t2v", "loss_v2t"]
    assert list(loss_ax.get_lines()[0].get_ydata()) == list(table["loss"])
    assert "优化步" in loss_ax.get_xlabel()
    assert [line.get_label() for line in lr_ax.get_lines()] == ["default.decay", "default.no_decay"]


def test_loss_fn_without_loss_key_is_named(tmp_path):
    trainer = Trainer(TinyNet(0.0), _config(), NoisyPairs(16, seed=0), collate, lambda m, b: {"mse": m(b["x"]).sum()},
                      tmp_path)
    with pytest.raises(KeyError, match=r"loss_fn returned keys \['mse'\]; it must return a 'loss' entry"):
        trainer.fit()


def test_frozen_weights_do_not_move(tmp_path):
    model = FrozenPart()
    before = {k: v.clone() for k, v in model.text.state_dict().items()}
    Trainer(model, _config(), NoisyPairs(16, seed=0), collate, mse_loss, tmp_path).fit()
    assert all(torch.equal(before[k], v) for k, v in model.text.state_dict().items())


def test_hugging_face_model_checkpointing_and_export(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=1)
    model = GPT2LMHeadModel(config)
    generator = torch.Generator().manual_seed(0)
    data = [torch.randint(0, 32, (12,), generator=generator) for _ in range(16)]

    def loss_fn(model, batch):
        return {"loss": model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss}

    train_config = _config(max_steps=4, batch_size=4, gradient_checkpointing=True)
    summary = Trainer(model, train_config, data, lambda items: {"input_ids": torch.stack(items)}, loss_fn,
                      tmp_path).fit()
    assert model.is_activation_checkpointing
    assert {"config.json", "model.safetensors"} <= {p.name for p in summary.final_dir.iterdir()}
    reloaded = GPT2LMHeadModel.from_pretrained(summary.final_dir)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reloaded.state_dict().values()))
    # the tied LM head is the token embedding: stored once in the checkpoint, under the embedding's name
    weights = load_file(latest_checkpoint(tmp_path / "checkpoints") / "model.safetensors")
    assert "transformer.wte.weight" in weights and "lm_head.weight" not in weights


def test_epochs_ignored_under_max_steps_is_said(tmp_path):
    """With max_steps set the run's length is max_steps: a changed `epochs` would silently change nothing."""
    import warnings as w

    from vlstudy.train.trainer import TrainConfig, Trainer

    data = [{"x": torch.tensor([1.0])}] * 8
    model = torch.nn.Linear(1, 1)
    with pytest.warns(UserWarning, match=r"train.epochs=20 is ignored: train.max_steps=3 sets the run's length"):
        Trainer(model, TrainConfig(epochs=20, max_steps=3, batch_size=2), data, torch.utils.data.default_collate,
                lambda m, b: {"loss": m(b["x"]).sum()}, tmp_path)
    with w.catch_warnings():
        w.simplefilter("error")
        Trainer(model, TrainConfig(epochs=2, batch_size=2), data, torch.utils.data.default_collate,
                lambda m, b: {"loss": m(b["x"]).sum()}, tmp_path / "b")
