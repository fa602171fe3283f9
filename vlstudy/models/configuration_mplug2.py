"""Configuration of the mPLUG-2-style baseline (`vlstudy.models.mplug2`): one config per component, widths derived.

mPLUG-2 (Xu et al., ICML 2023; official code X-PLUG/mPLUG-2, ``configs/config_bert.json``) sizes its text side by
role: ``text_encoder_layers`` (12, of which the last ``num_uni_layer`` = 2 are the universal layers),
``fusion_layers`` (3) and ``text_decode_layers`` (12), all at the BERT width, with 50 learnable latents in the first
universal layer. Here every part has the video encoder's width (no ``visn_fc`` projection is needed) and the
vocabulary is the tokenizer's; neither is typed.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import BertConfig, PreTrainedConfig

from vlstudy.config import derived
from vlstudy.models.video_encoder import VideoEncoderConfig

__all__ = ["MPLUG2Config", "MPLUG2TextConfig"]


@strict
class MPLUG2TextConfig(PreTrainedConfig):
    """The text side of mPLUG-2, layers counted by role. Its width is not a field: it is the video encoder's.

    Attributes:
        text_layers: text-only BERT layers below the universal layers.
        universal_layers: layers whose self-attention and MLP serve video and text alike (>= 2: the queries read
            the video in all but the last, the video tokens read the queries in the last; official: 2).
        fusion_layers: layers where text self-attends and cross-attends to the video (official: 3).
        decoder_layers: causal BERT layers with cross-attention to the video, for generation (official: 12).
        num_queries: learnable queries that summarise a clip inside the universal layers (official: 50).
        num_heads: attention heads; divides the width.
        mlp_ratio: intermediate width / width.
        dropout: hidden and attention dropout.
        max_length: longest text, special tokens included (the encoder's and the decoder's).
        vocab_size, pad_token_id: derived from the tokenizer.
    """

    model_type = "vlstudy_mplug2_text"

    text_layers: int = 2
    universal_layers: int = 2
    fusion_layers: int = 2
    decoder_layers: int = 2
    num_queries: int = 16
    num_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    max_length: int = 64
    vocab_size: int | None = derived(None)
    pad_token_id: int | None = derived(None)

    def __post_init__(self, **kwargs) -> None:
        super().__post_init__(**kwargs)
        if self.universal_layers < 2:
            raise ValueError(f"universal_layers must be >= 2 (queries read the video, then the video reads the "
                             f"queries), got {self.universal_layers}")
        for name in ("text_layers", "fusion_layers", "decoder_layers", "num_queries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length < 3:
            raise ValueError(f"max_length must leave room for [CLS] text [SEP], got {self.max_length}")


@strict
class MPLUG2Config(PreTrainedConfig):
    """The mPLUG-2-style baseline. Widths are derived: every text part has the video encoder's width; the
    vocabulary is the tokenizer's.

    Attributes:
        video: TimeSformer size (``video.pretrained_path``: a CLIP / ViT / TimeSformer folder to start from).
        text: layers of the text encoder, universal layers, fusion and decoder.
        contrastive_dim: VTC feature size (256 in the official configs).
        temperature: initial VTC temperature (learnable, clamped to [0.001, 0.5]).
        num_classes: classification head outputs (45 Youku-mPLUG categories).
    """

    model_type = "vlstudy_mplug2"
    sub_configs_defaults = {"video": VideoEncoderConfig, "text": MPLUG2TextConfig}

    video: dict | PreTrainedConfig | None = None
    text: dict | PreTrainedConfig | None = None
    contrastive_dim: int = 256
    temperature: float = 0.07
    num_classes: int = 45

    def __post_init__(self, **kwargs) -> None:
        super().__post_init__(**kwargs)
        if self.video.hidden_size % self.text.num_heads:
            raise ValueError(f"width {self.video.hidden_size} is not a multiple of text.num_heads "
                             f"{self.text.num_heads}")

    @property
    def width(self) -> int:
        """D: the width of every part (the video encoder's)."""
        return self.video.hidden_size

    def bert(self, num_layers: int, cross_attention: bool) -> BertConfig:
        """A BERT config of this model's width, vocabulary and dropout: `num_layers` layers, with cross-attention
        (transformers builds it in decoder mode only; the model makes the layers bidirectional where needed)."""
        t = self.text
        return BertConfig(
            vocab_size=t.vocab_size, hidden_size=self.width, num_hidden_layers=num_layers,
            num_attention_heads=t.num_heads, intermediate_size=int(self.width * t.mlp_ratio),
            hidden_dropout_prob=t.dropout, attention_probs_dropout_prob=t.dropout, max_position_embeddings=t.max_length,
            pad_token_id=t.pad_token_id, is_decoder=cross_attention, add_cross_attention=cross_attention)
