"""TimeSformer wrapper: shapes, divided space-time attention, save/load, frame counts, starting from TimeSformer,
CLIP and ViT checkpoints (inflation), strict loading."""

import re

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    TimesformerConfig,
    TimesformerModel,
    ViTConfig,
    ViTModel,
)

from vlstudy.models.loading import CheckpointError
from vlstudy.models.video_encoder import VideoEncoderConfig, VideoEncoderModel, resize_time_embeddings

TINY = dict(image_size=32, patch_size=16, num_frames=2, hidden_size=32, num_layers=1, num_heads=2)
IMAGE = dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, image_size=32,
             patch_size=16)
IMAGE_AS_VIDEO = dict(image_size=32, patch_size=16, hidden_size=32, num_layers=2, num_heads=2)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return VideoEncoderModel(VideoEncoderConfig(**TINY)).eval()


def test_tokens_are_cls_plus_patches_times_frames(encoder):
    config = encoder.config
    assert (config.num_patches, config.num_tokens) == (4, 1 + 4 * 2)
    out = encoder(torch.randn(3, 2, 3, 32, 32))
    assert out.shape == (3, 9, 32)


# ---- divided space-time attention --------------------------------------------------------------------------------


def _changed_tokens(forward, video: torch.Tensor, frames: int) -> set:
    """Which output tokens change when patch 0 of frame 1 changes: {"cls"} and (patch, frame) pairs."""
    changed = video.clone()
    changed[:, 1, :, :16, :16] += 1.0  # patch n=0 of frame t=1 only
    with torch.no_grad():
        delta = (forward(changed) - forward(video)).abs().amax(dim=-1)[0]  # (1 + N*T,)
    out = {"cls"} if delta[0] > 1e-6 else set()
    return out | {divmod(i, frames) for i in range(delta.numel() - 1) if delta[1 + i] > 1e-6}  # token 1 + n*T + t


def _zeroed(state: dict, pattern: str) -> dict:
    """A copy of `state` with the tensors whose names match `pattern` set to zero."""
    return {k: torch.zeros_like(v) if re.search(pattern, k) else v for k, v in state.items()}


def _is_divided_space_time(model: torch.nn.Module, forward, frames: int = 3, patches: int = 4) -> bool:
    """The signature of divided attention in one block: time attention moves a patch's change only to the same
    patch in the other frames; space attention moves it only within its own frame (and the CLS token)."""
    video = torch.randn(1, frames, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        # temporal path only: the space attention's output and the MLP's output projections set to zero
        model.load_state_dict(_zeroed(state, r"layer\.\d+\.(attention\.output|output)\.dense\."))
        time_only = _changed_tokens(forward, video, frames)
        # spatial path only: the temporal branch's output projection set to zero
        model.load_state_dict(_zeroed(state, r"layer\.\d+\.temporal_dense\."))
        space_only = _changed_tokens(forward, video, frames)
    finally:
        model.load_state_dict(state)
    return time_only == {(0, t) for t in range(frames)} and space_only == {"cls"} | {(n, 1) for n in range(patches)}


def test_attention_is_divided_space_time():
    torch.manual_seed(0)
    encoder = VideoEncoderModel(VideoEncoderConfig(**{**TINY, "num_frames": 3})).eval()
    assert _is_divided_space_time(encoder, encoder)
    # The same check rejects joint space-time attention (every token attends to every token of the clip).
    joint = TimesformerModel(TimesformerConfig(image_size=32, patch_size=16, num_frames=3, hidden_size=32,
                                               num_hidden_layers=1, num_attention_heads=2, intermediate_size=128,
                                               attention_type="joint_space_time")).eval()
    assert not _is_divided_space_time(joint, lambda v: joint(pixel_values=v).last_hidden_state)


# ---- config, inputs ------------------------------------------------------------------------------------------


def test_full_scale_is_expressible_by_config_only():
    config = VideoEncoderConfig(image_size=224, patch_size=16, num_frames=8, hidden_size=768, num_layers=12,
                                num_heads=12)
    hf = config.to_timesformer()
    assert (hf.hidden_size, hf.num_hidden_layers, hf.intermediate_size, config.num_tokens) == (768, 12, 3072, 1569)


def test_a_clip_of_the_wrong_size_is_rejected_clearly(encoder):
    with pytest.raises(ValueError, match=r"^video must be \(B, T=2, C, 32, 32\); got \(1, 3, 3, 32, 32\)$"):
        encoder(torch.randn(1, 3, 3, 32, 32))


def test_inconsistent_sizes_are_rejected():
    with pytest.raises(ValueError, match="image_size 30 is not a multiple of patch_size 16"):
        VideoEncoderConfig(image_size=30, patch_size=16)


def test_time_embeddings_resample_by_nearest_frame():
    weight = torch.tensor([[[0.0], [1.0]]])  # (1, T=2, D=1)
    assert resize_time_embeddings(weight, 4).flatten().tolist() == [0.0, 0.0, 1.0, 1.0]
    assert resize_time_embeddings(weight, 2) is weight


# ---- save / load -------------------------------------------------------------------------------------------------


def test_save_pretrained_round_trip_is_bit_identical(encoder, tmp_path):
    encoder.save_pretrained(tmp_path)
    loaded = VideoEncoderModel.from_pretrained(tmp_path)
    video = torch.randn(2, 2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(video), encoder(video))
    assert loaded.config.num_frames == 2 and not loaded.training  # transformers' convention: eval mode


def test_set_num_frames_resamples_the_time_embeddings(encoder, tmp_path):
    encoder.save_pretrained(tmp_path)
    longer = VideoEncoderModel.from_pretrained(tmp_path)
    longer.set_num_frames(4)
    assert longer(torch.randn(1, 4, 3, 32, 32)).shape == (1, 1 + 4 * 4, 32)
    torch.testing.assert_close(longer.timesformer.embeddings.time_embeddings[0],
                               encoder.timesformer.embeddings.time_embeddings[0].repeat_interleave(2, dim=0))


def test_strict_loading_names_the_tensor_and_the_file(encoder, tmp_path):
    encoder.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    tensors = load_file(weights)
    save_file({k: v for k, v in tensors.items() if k != "timesformer.layernorm.bias"}, weights)
    with pytest.raises(CheckpointError, match=rf"^{weights}: missing tensors \['timesformer.layernorm.bias'\] "
                                              r"\(in VideoEncoderModel, not in the file\)$"):
        VideoEncoderModel.from_pretrained(tmp_path)
    save_file({**tensors, "timesformer.extra": torch.zeros(1)}, weights)
    with pytest.raises(CheckpointError, match=rf"^{weights}: unexpected tensors \['timesformer.extra'\] "
                                              r"\(in the file, not in VideoEncoderModel\)$"):
        VideoEncoderModel.from_pretrained(tmp_path)


def test_loads_a_timesformer_checkpoint_from_a_local_folder(encoder, tmp_path):
    encoder.timesformer.save_pretrained(tmp_path)
    loaded = VideoEncoderModel(VideoEncoderConfig(**TINY, pretrained_path=str(tmp_path))).eval()
    video = torch.randn(2, 2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(video), encoder(video), rtol=0, atol=0)
    longer = VideoEncoderModel(VideoEncoderConfig(**{**TINY, "num_frames": 4}, pretrained_path=str(tmp_path)))
    assert longer(torch.randn(1, 4, 3, 32, 32)).shape == (1, 1 + 4 * 4, 32)
    torch.testing.assert_close(longer.timesformer.embeddings.time_embeddings[0, :2],
                               encoder.timesformer.embeddings.time_embeddings[0, :1].expand(2, -1))
    assert longer.image_lr_scale("video_encoder") == {}  # not CLIP: the official 0.1x rule does not apply


def test_a_pretrained_folder_of_another_architecture_is_named(tmp_path):
    TimesformerModel(VideoEncoderConfig(**TINY).to_timesformer()).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=rf"^{tmp_path}/config.json: hidden_size is 32 but "
                                         r"VideoEncoderConfig.hidden_size is 64$"):
        VideoEncoderModel(VideoEncoderConfig(**{**TINY, "hidden_size": 64}, pretrained_path=str(tmp_path)))


def test_pickled_weights_are_refused_by_name(tmp_path):
    TimesformerModel(VideoEncoderConfig(**TINY).to_timesformer()).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=rf"^{tmp_path}/pytorch_model.bin: pickled PyTorch weights are not "
                                              r"loaded \(use_safetensors=True\)"):
        VideoEncoderModel(VideoEncoderConfig(**TINY, pretrained_path=str(tmp_path)))


# ---- starting from an image model (inflation) ------------------------------------------------------------------


def _clip_tokens(model, frame):
    vision = getattr(model, "vision_model", model)
    return vision.post_layernorm(vision(pixel_values=frame).last_hidden_state)  # CLIP's ln_post on every token


IMAGE_MODELS = {
    "clip_vision": (lambda: CLIPVisionModel(CLIPVisionConfig(**IMAGE)), _clip_tokens),
    "clip_full": (lambda: CLIPModel(CLIPConfig(vision_config=IMAGE, text_config=dict(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=50,
        bos_token_id=0, eos_token_id=1, pad_token_id=1))), _clip_tokens),
    "vit": (lambda: ViTModel(ViTConfig(**IMAGE)), lambda m, f: m(pixel_values=f).last_hidden_state),
}


@pytest.fixture(scope="module", params=sorted(IMAGE_MODELS))
def image_model(request, tmp_path_factory):
    """(name, image model in eval mode, its token function, its folder)."""
    build, tokens = IMAGE_MODELS[request.param]
    torch.manual_seed(0)
    model = build().eval()
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    return request.param, model, tokens, folder


def test_a_frame_as_a_one_frame_clip_gives_the_image_model_tokens(image_model):
    name, model, tokens, folder = image_model
    encoder = VideoEncoderModel(VideoEncoderConfig(**IMAGE_AS_VIDEO, num_frames=1, pretrained_path=str(folder))).eval()
    frames = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(encoder(frames[:, None]), tokens(model, frames), rtol=1e-5, atol=1e-5)
    clip = name.startswith("clip")
    assert (encoder.config.hidden_act, encoder.config.pre_norm) == (("quick_gelu", True) if clip else ("gelu", False))


def test_temporal_attention_starts_as_identity(image_model):
    """Inflated as the official code does (temporal_fc and the time embeddings zero): T copies of a frame give the
    frame's tokens in every frame position and the image model's CLS."""
    _, model, tokens, folder = image_model
    encoder = VideoEncoderModel(VideoEncoderConfig(**IMAGE_AS_VIDEO, num_frames=4, pretrained_path=str(folder))).eval()
    assert not encoder.timesformer.embeddings.time_embeddings.any()
    assert all(not layer.temporal_dense.weight.any() for layer in encoder.timesformer.encoder.layer)
    frames = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        video_tokens = encoder(frames[:, None].expand(-1, 4, -1, -1, -1))  # (B, 1 + N*T, D), patches in (n t) order
        reference = tokens(model, frames)  # (B, 1 + N, D)
    torch.testing.assert_close(video_tokens[:, 0], reference[:, 0], rtol=1e-5, atol=1e-5)
    for t in range(4):
        torch.testing.assert_close(video_tokens[:, 1 + t::4], reference[:, 1:], rtol=1e-5, atol=1e-5)


def test_clip_initialised_weights_train_at_a_tenth_of_the_rate_temporal_parts_excepted(image_model):
    name, _, _, folder = image_model
    encoder = VideoEncoderModel(VideoEncoderConfig(**IMAGE_AS_VIDEO, num_frames=2, pretrained_path=str(folder)))
    scales = encoder.image_lr_scale("video_encoder")
    if not name.startswith("clip"):  # the official rule is CLIP's (clip_model: true); ViT trains at 1x
        assert scales == {}
        return
    from vlstudy.train.optim import lr_scale_for

    for param_name, _ in encoder.named_parameters():
        full = f"video_encoder.{param_name}"
        temporal = any(p in param_name for p in ("temporal_", "time_embeddings"))
        assert lr_scale_for(full, scales)[1] == (1.0 if temporal else 0.1), full


def test_an_image_checkpoint_of_another_width_is_named(image_model):
    _, _, _, folder = image_model
    with pytest.raises(ValueError, match=rf"^{folder}/config.json: num_layers is 2 but VideoEncoderConfig."
                                         r"num_layers is 3$"):
        VideoEncoderModel(VideoEncoderConfig(**{**IMAGE_AS_VIDEO, "num_layers": 3}, pretrained_path=str(folder)))


def test_from_pretrained_keeps_the_inflated_weights_without_reading_the_image_model(image_model, tmp_path):
    _, _, _, folder = image_model
    encoder = VideoEncoderModel(VideoEncoderConfig(**IMAGE_AS_VIDEO, num_frames=2, pretrained_path=str(folder)))
    with torch.no_grad():
        encoder.timesformer.encoder.layer[0].temporal_dense.weight.fill_(0.5)  # "trained"
    encoder.save_pretrained(tmp_path / "encoder")
    loaded = VideoEncoderModel.from_pretrained(tmp_path / "encoder")
    assert loaded.timesformer.encoder.layer[0].temporal_dense.weight.eq(0.5).all()
    assert (loaded.config.hidden_act, loaded.config.pretrained_path) == (encoder.config.hidden_act, str(folder))


def test_the_config_switch_turns_checkpointing_on_at_construction():
    """``gradient_checkpointing: true`` in the encoder's params: transformers' post_init enables it (and consumes
    the flag, so a saved config does not switch it on again)."""
    encoder = VideoEncoderModel(VideoEncoderConfig(**TINY, gradient_checkpointing=True))
    assert encoder.is_activation_checkpointing
    assert "gradient_checkpointing" not in encoder.config.to_dict()
    assert not VideoEncoderModel(VideoEncoderConfig(**TINY)).is_activation_checkpointing


def test_an_image_checkpoint_is_read_strictly(tmp_path):
    model = CLIPVisionModel(CLIPVisionConfig(**IMAGE))
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    tensors = load_file(weights)
    save_file({**tensors, "extra": torch.zeros(1)}, weights, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=rf"^{weights}: unexpected tensors \['extra'\] \(in the file, not in "
                                              r"CLIPVisionModel\)$"):
        VideoEncoderModel(VideoEncoderConfig(**IMAGE_AS_VIDEO, num_frames=2, pretrained_path=str(tmp_path)))
    save_file({k: v for k, v in tensors.items() if "pre_layrnorm.weight" not in k}, weights, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=rf"^{weights}: missing tensors \['.*pre_layrnorm.weight'\]"):
        VideoEncoderModel(VideoEncoderConfig(**IMAGE_AS_VIDEO, num_frames=2, pretrained_path=str(tmp_path)))
