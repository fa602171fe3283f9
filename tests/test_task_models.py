"""How tasks build models: `load_model` (saved weights or only the saved architecture, any frame count) and
`model_train_config` (the official 0.1x learning rate of CLIP-initialised weights)."""

import pytest
import torch
from _tiny_models import mplug_config, save_tiny_lm, tokenizer
from transformers import CLIPVisionConfig, CLIPVisionModel

from vlstudy.models.alpro import ALPROConfig, ALPROForClassification, ALPROForPretraining, TextEncoderConfig
from vlstudy.models.mplug_video import MPLUGVideoForClassification, MPLUGVideoForContrastive
from vlstudy.models.video_encoder import VideoEncoderConfig
from vlstudy.tasks.common import as_numpy, load_model, model_train_config
from vlstudy.train.trainer import TrainConfig


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    return save_tiny_lm("gpt2", tokenizer(), tmp_path_factory.mktemp("lm"))


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                                     image_size=32, patch_size=16)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pretrained(lm_dir, clip_dir, tmp_path_factory):
    """A CLIP-initialised mPLUG-video pre-training checkpoint."""
    torch.manual_seed(0)
    model = MPLUGVideoForContrastive(mplug_config(lm_dir, video={"pretrained_path": str(clip_dir)}))
    folder = tmp_path_factory.mktemp("pretrained")
    model.save_pretrained(folder)
    return model, folder


def test_load_model_with_weights_and_another_frame_count(pretrained):
    model, folder = pretrained
    loaded = load_model(MPLUGVideoForClassification, folder, pretrained=True, num_frames=8)
    assert loaded.training and loaded.config.video.num_frames == 8
    assert torch.equal(loaded.abstractor.queries, model.abstractor.queries)
    assert loaded.visual_prefix(torch.randn(1, 8, 3, 32, 32), 1).shape[1] == 4


def test_load_model_without_weights_keeps_the_architecture_not_the_image_start(pretrained):
    model, folder = pretrained
    fresh = load_model(MPLUGVideoForClassification, folder, pretrained=False, num_frames=4)
    assert fresh.config.video.pretrained_path is None and fresh.config.video.hidden_act == "quick_gelu"
    patch = "timesformer.embeddings.patch_embeddings.projection.weight"
    assert not torch.equal(fresh.video_encoder.state_dict()[patch], model.video_encoder.state_dict()[patch])
    assert not torch.equal(fresh.abstractor.queries, model.abstractor.queries)
    assert model_train_config(fresh, TrainConfig()).lr_scale == {}  # from scratch: no CLIP weights to protect


def test_clip_initialised_weights_get_the_official_learning_rate_scale(pretrained):
    _, folder = pretrained
    loaded = load_model(MPLUGVideoForClassification, folder, pretrained=True, num_frames=4)
    scales = model_train_config(loaded, TrainConfig(lr_scale={"abstractor": 2.0})).lr_scale
    assert scales["video_encoder"] == 0.1 and scales["abstractor"] == 2.0
    assert scales["video_encoder.timesformer.encoder.layer.0.temporal_attention"] == 1.0
    own = model_train_config(loaded, TrainConfig(lr_scale={"video_encoder": 0.5})).lr_scale
    assert own["video_encoder"] == 0.5  # an explicit entry wins


def test_load_model_reads_alpro_with_its_tokenizer(tmp_path):
    torch.manual_seed(0)
    config = ALPROConfig(video=VideoEncoderConfig(image_size=32, patch_size=16, num_frames=2, hidden_size=32,
                                                  num_layers=1, num_heads=2), text=TextEncoderConfig(num_heads=2))
    model = ALPROForPretraining(config, tokenizer())
    model.save_pretrained(tmp_path)
    for pretrained in (True, False):
        loaded = load_model(ALPROForClassification, tmp_path, pretrained=pretrained, num_frames=4)
        assert loaded.tokenizer("小猫")["input_ids"] == model.tokenizer("小猫")["input_ids"]
        assert loaded.config.video.num_frames == 4
        same = torch.equal(loaded.text_encoder.embeddings.word_embeddings.weight,
                           model.text_encoder.embeddings.word_embeddings.weight)
        assert same == pretrained


def test_as_numpy_gives_float32_for_autocast_outputs_and_keeps_other_dtypes():
    """`predict` stores a model's outputs with `as_numpy`: under bf16 autocast (CUDA, or the bf16 profile on a CPU)
    they are bf16, which numpy cannot hold."""
    x = torch.tensor([1.0, 2.5, -3.0])
    for dtype in (torch.bfloat16, torch.float16):
        out = as_numpy(x.to(dtype))
        assert out.dtype.name == "float32" and out.tolist() == [1.0, 2.5, -3.0]
    assert as_numpy(x).dtype.name == "float32" and as_numpy(torch.arange(3)).dtype.name == "int64"
    with pytest.raises(TypeError, match="BFloat16"):  # why: what the plain conversion does
        x.to(torch.bfloat16).numpy()
