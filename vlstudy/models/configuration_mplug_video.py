"""mPLUG-video's configuration (the Hugging Face convention of a ``configuration_<model>.py`` beside the model):
its sub-configs, the frozen LM's folder and the heads' sizes. The model is `vlstudy.models.mplug_video`."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from vlstudy.models.abstractor import AbstractorConfig
from vlstudy.models.text_lm import TextLMConfig
from vlstudy.models.video_encoder import VideoEncoderConfig

__all__ = ["MPLUGVideoConfig"]


@strict
class MPLUGVideoConfig(PreTrainedConfig):
    """mPLUG-video. Widths are derived, never typed: the abstractor's queries live at ``video.hidden_size`` and its
    projection outputs the LM's ``hidden_size``, read from the LM's own ``config.json``.

    Attributes:
        video: TimeSformer size; ``video.pretrained_path`` may name a CLIP / ViT / TimeSformer folder to start from.
        abstractor: learnable queries and blocks.
        lm_path: local folder with the frozen causal LM and its tokenizer (safetensors; never copied into this
            model's checkpoints). None builds an untrained LM from `lm` (tests, benchmarks; cannot be saved).
        lm: size of that untrained LM; unused when `lm_path` is set.
        max_text_length: longest tokenised text (BOS + prompt + answer + EOS); longer ones lose their tail.
        contrastive_dim: retrieval feature size (256 in the official config).
        temperature: initial contrastive temperature (0.07, learnable, clamped to [0.001, 0.5]).
        num_classes: classification head outputs.
    """

    model_type = "vlstudy_mplug_video"
    sub_configs_defaults = {"video": VideoEncoderConfig, "abstractor": AbstractorConfig, "lm": TextLMConfig}

    video: dict | PreTrainedConfig | None = None
    abstractor: dict | PreTrainedConfig | None = None
    lm_path: str | None = None
    lm: dict | PreTrainedConfig | None = None
    max_text_length: int = 96
    contrastive_dim: int = 256
    temperature: float = 0.07
    num_classes: int = 45
