"""TimeSformer wrapper: shapes, divided space-time attention, input checks, loading real weights from a folder."""

import pytest
import torch
from transformers import TimesformerModel

from vlstudy.models.video_encoder import VideoEncoder, VideoEncoderConfig, resize_time_embeddings

TINY = dict(image_size=32, patch_size=16, num_frames=2, hidden_size=32, num_layers=1, num_heads=2)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return VideoEncoder(VideoEncoderConfig(**TINY)).eval()


def test_tokens_are_cls_plus_patches_times_frames(encoder):
    config = encoder.config
    assert (config.num_patches, config.num_tokens) == (4, 1 + 4 * 2)
    out = encoder(torch.randn(3, 2, 3, 32, 32))
    assert out.shape == (3, 9, 32)


def test_attention_is_divided_space_time(encoder):
    assert encoder.timesformer.config.attention_type == "divided_space_time"
    video = torch.randn(1, 2, 3, 32, 32)
    changed = video.clone()
    changed[:, 1, :, :16, :16] += 1.0  # patch 0 of frame 1 only
    before, after = encoder(video), encoder(changed)
    # Temporal attention carries the change to patch 0 of frame 0: token 1 + n*T + t with n=0, t=0 → index 1.
    assert not torch.allclose(before[:, 1], after[:, 1])


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


def test_loads_real_weights_from_a_local_folder(encoder, tmp_path):
    encoder.timesformer.save_pretrained(tmp_path)
    loaded = VideoEncoder(VideoEncoderConfig(**TINY, pretrained_path=str(tmp_path))).eval()
    video = torch.randn(2, 2, 3, 32, 32)
    torch.testing.assert_close(loaded(video), encoder(video))

    longer = VideoEncoder(VideoEncoderConfig(**{**TINY, "num_frames": 4}, pretrained_path=str(tmp_path)))
    assert longer(torch.randn(1, 4, 3, 32, 32)).shape == (1, 1 + 4 * 4, 32)
    torch.testing.assert_close(longer.timesformer.embeddings.time_embeddings[0, :2],
                               encoder.timesformer.embeddings.time_embeddings[0, :1].expand(2, -1))


def test_a_pretrained_folder_of_another_architecture_is_named(tmp_path):
    TimesformerModel(VideoEncoderConfig(**TINY).to_timesformer()).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=rf"^{tmp_path}/config.json: hidden_size is 32 but "
                                         r"VideoEncoderConfig.hidden_size is 64$"):
        VideoEncoder(VideoEncoderConfig(**{**TINY, "hidden_size": 64}, pretrained_path=str(tmp_path)))
