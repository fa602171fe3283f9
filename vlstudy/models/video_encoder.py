"""The video encoder: TimeSformer with divided space-time attention (Bertasius et al., ICML 2021).

mPLUG-video and the ALPRO baseline both encode a clip with TimeSformer (Youku-mPLUG, Xu et al. 2023, Sec. 4;
official code X-PLUG/Youku-mPLUG ``models/vision_transformer.py::TimeSformer``). Each block attends over time
first (every patch position with itself in the other frames), then over space (every patch with the others of its
frame and the CLS token), then applies its MLP. The blocks are Hugging Face's (``transformers.TimesformerModel``,
which follows facebookresearch/TimeSformer): the same algorithm, well tested; this file adds what the study needs.

- A ``PreTrainedConfig`` / ``PreTrainedModel`` pair: ``save_pretrained``, ``from_pretrained`` (strict, see
  `vlstudy.models.loading`), activation checkpointing.
- A change of frame count between stages (pre-training 4 frames, classification 8, captioning 16) by resampling the
  learned time embeddings to the nearest frame (`VideoEncoderModel.set_num_frames`).
- Initialisation from a local image or video checkpoint (``pretrained_path``), as the official recipe starts from
  CLIP ViT-B/16 (``configs/models/clip-b16.json``: ``pretrained_ckpt``, ``clip_model: true``). The official
  ``DistributedGPT3_Pretrain.__init__`` (``models/distributed_gpt3.py``) loads the CLIP weights into the
  TimeSformer with ``load_state_dict(strict=False)``; the parts CLIP lacks keep the TimeSformer's own
  initialisation: ``temporal_embed`` zeros and every block's ``temporal_fc`` zeroed (``TimeSformer.__init__``), so
  the temporal branch adds nothing at first and each frame is encoded as CLIP encodes an image. Here the mapping
  is explicit and strict (`_from_clip`, `_from_vit`): every CLIP/ViT tensor is used, and only the temporal parts
  (`TEMPORAL_PARTS`) are left to their initialisation. CLIP's pre-LayerNorm (``ln_pre``, the official
  ``norm_pre``) becomes `VideoEncoderModel.pre_norm`, its ``ln_post`` the final norm of every token (as the
  official ``self.norm``). Unlike the official code, the blocks use the checkpoint's activation (CLIP's QuickGELU,
  where the official blocks use GELU), so a one-frame clip gives exactly CLIP's tokens; the activation, norm epsilon
  and pre-norm are *derived* config fields, read from the checkpoint. The official optimiser trains CLIP-initialised
  weights at 0.1x the learning rate, temporal parts excepted (``optim/optim_factory.py::get_parameter_groups``,
  ``visual_backbone_scale``): `VideoEncoderModel.image_lr_scale` gives that rule as the trainer's ``lr_scale``.

Token order (Hugging Face): index 0 is the CLS token, then patch tokens ordered patch-major, frame-minor, i.e.
``(n t)``: token ``1 + n*T + t`` belongs to patch ``n`` of frame ``t``.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (
    AutoConfig,
    ChineseCLIPModel,
    ChineseCLIPVisionModel,
    CLIPModel,
    CLIPVisionModel,
    PreTrainedConfig,
    TimesformerConfig,
    TimesformerModel,
    ViTModel,
)

from vlstudy.config import derived
from vlstudy.models.loading import CheckpointError, StrictPreTrainedModel, load_strict

__all__ = ["VideoEncoderConfig", "VideoEncoderModel", "VideoEncoderMixin", "resize_time_embeddings", "TEMPORAL_PARTS",
           "on_meta_device"]

logger = logging.getLogger("vlstudy.models")

# Module names, inside each TimeSformer block, of the temporal branch that an image checkpoint lacks.
TEMPORAL_PARTS = ("temporal_attention", "temporal_layernorm", "temporal_dense")
TIME_EMBEDDINGS = "timesformer.embeddings.time_embeddings"

# Image checkpoints the encoder can start from: config.json model_type → (model class, is a CLIP-family model).
IMAGE_MODELS = {"clip": (CLIPModel, True), "clip_vision_model": (CLIPVisionModel, True),
                "chinese_clip": (ChineseCLIPModel, True), "chinese_clip_vision_model": (ChineseCLIPVisionModel, True),
                "vit": (ViTModel, False), "timesformer": (TimesformerModel, False)}


def on_meta_device() -> bool:
    """Whether modules are being built on the meta device (inside ``from_pretrained``: no weights to read)."""
    return torch.empty(0).device.type == "meta"


@strict
class VideoEncoderConfig(PreTrainedConfig):
    """TimeSformer size. Defaults are a toy model for the CPU; ViT-B/16 is ``image_size=224, patch_size=16,
    hidden_size=768, num_layers=12, num_heads=12`` (the official clip-b16 config uses 8 heads).

    Attributes:
        image_size: frame height = width, in pixels.
        patch_size: square patch side, in pixels; divides `image_size`.
        num_frames: frames per clip (T).
        hidden_size: token width (D).
        num_layers: TimeSformer blocks.
        num_heads: attention heads; divides `hidden_size`.
        mlp_ratio: MLP width / `hidden_size`.
        dropout: dropout on attention probabilities and hidden states.
        gradient_checkpointing: transformers' construction-time switch: the model's ``post_init`` calls
            ``activation_checkpointing_enable()`` and consumes the flag (the trainer's
            ``train.gradient_checkpointing`` does the same for a whole model).
        pretrained_path: a local folder (``save_pretrained`` format, safetensors) of a TimeSformer, CLIP / Chinese-
            CLIP (vision or full model) or ViT, read when the encoder is built (never by ``from_pretrained``, whose
            checkpoint already holds the result). Its architecture must equal the fields above, the frame count
            apart; it stays in the saved config as the weights' provenance.
        hidden_act, layer_norm_eps, pre_norm: derived from the checkpoint of `pretrained_path` (TimeSformer's
            GELU, 1e-6 and no pre-norm without one).
        image_model_type: derived: that checkpoint's ``model_type`` (None without one).
    """

    model_type = "vlstudy_video_encoder"

    image_size: int = 64
    patch_size: int = 16
    num_frames: int = 4
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    gradient_checkpointing: bool = False
    pretrained_path: str | None = None
    hidden_act: str = derived("gelu")
    layer_norm_eps: float = derived(1e-6)
    pre_norm: bool = derived(False)
    image_model_type: str | None = derived(None)

    def __post_init__(self, **kwargs) -> None:
        super().__post_init__(**kwargs)
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if self.num_frames < 1 or self.num_layers < 1:
            raise ValueError("num_frames and num_layers must be positive")

    @property
    def num_patches(self) -> int:
        """Patches per frame (N)."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_tokens(self) -> int:
        """Output tokens per clip: CLS + N*T."""
        return 1 + self.num_patches * self.num_frames

    @property
    def is_clip_initialised(self) -> bool:
        """Whether the weights descend from a CLIP-family checkpoint (the official 0.1x learning-rate rule)."""
        return self.pretrained_path is not None and IMAGE_MODELS.get(self.image_model_type, (None, False))[1]

    def to_timesformer(self) -> TimesformerConfig:
        return TimesformerConfig(
            image_size=self.image_size, patch_size=self.patch_size, num_frames=self.num_frames,
            hidden_size=self.hidden_size, num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
            intermediate_size=int(self.hidden_size * self.mlp_ratio), hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout, attention_type="divided_space_time",
            hidden_act=self.hidden_act, layer_norm_eps=self.layer_norm_eps)


# ---- helpers -----------------------------------------------------------------------------------------------------


def resize_time_embeddings(weight: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Resample learned time embeddings to another frame count (nearest neighbour, as TimeSformer does).

    Args:
        weight: (1, T0, D) time embeddings.
        num_frames: T1.

    Returns:
        (1, T1, D); `weight` itself when T0 == T1.
    """
    if weight.shape[1] == num_frames:
        return weight
    resized = F.interpolate(weight.transpose(1, 2), size=num_frames, mode="nearest")  # (1, D, T1)
    return resized.transpose(1, 2).contiguous()  # (1, T1, D)


def _checkpoint_architecture(config: VideoEncoderConfig, path: str) -> None:
    """Check the checkpoint at `path` against `config` (named errors) and fill the config's derived fields."""
    source = AutoConfig.from_pretrained(path, local_files_only=True)
    if source.model_type not in IMAGE_MODELS:
        raise ValueError(f"{path}/config.json: model_type {source.model_type!r} is not one the video encoder starts "
                         f"from ({', '.join(IMAGE_MODELS)})")
    vision = getattr(source, "vision_config", source)  # a full CLIP model: its vision tower
    theirs = {"image_size": vision.image_size, "patch_size": vision.patch_size, "hidden_size": vision.hidden_size,
              "num_layers": vision.num_hidden_layers, "num_heads": vision.num_attention_heads,
              "mlp_ratio": vision.intermediate_size / vision.hidden_size}
    for name, value in theirs.items():
        if getattr(config, name) != value:
            raise ValueError(f"{path}/config.json: {name} is {value} but VideoEncoderConfig.{name} is "
                             f"{getattr(config, name)}")
    if getattr(vision, "qkv_bias", True) is not True or getattr(vision, "attention_type", "divided_space_time") \
            != "divided_space_time":
        raise ValueError(f"{path}/config.json: needs attention with q/k/v biases and divided space-time attention")
    config.hidden_act, config.layer_norm_eps = vision.hidden_act, vision.layer_norm_eps
    config.pre_norm = IMAGE_MODELS[source.model_type][1]
    config.image_model_type = source.model_type


def _fused_qkv(tensors: dict[str, torch.Tensor], prefixes: tuple[str, str, str], kind: str) -> torch.Tensor:
    """Stack q, k, v projections (rows) into TimeSformer's fused ``qkv`` Linear (query rows first)."""
    return torch.cat([tensors.pop(f"{p}.{kind}") for p in prefixes])


def _layer_tensors(tensors: dict[str, torch.Tensor], num_layers: int, layer_prefix: str, qkv: tuple[str, str, str],
                   renames: dict[str, str]) -> dict[str, torch.Tensor]:
    """The spatial parts of every TimeSformer block from a ViT-style block (`tensors` is consumed)."""
    out = {}
    for i in range(num_layers):
        theirs, ours = f"{layer_prefix}{i}.", f"timesformer.encoder.layer.{i}."
        for kind in ("weight", "bias"):
            out[f"{ours}attention.attention.qkv.{kind}"] = _fused_qkv(tensors, tuple(theirs + q for q in qkv), kind)
            for our_name, their_name in renames.items():
                out[f"{ours}{our_name}.{kind}"] = tensors.pop(f"{theirs}{their_name}.{kind}")
    return out


def _from_clip(tensors: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """CLIP vision tower (``CLIPVisionTransformer`` names) → TimeSformer names; `tensors` is consumed."""
    out = _layer_tensors(tensors, num_layers, "encoder.layers.", ("self_attn.q_proj", "self_attn.k_proj",
                                                                  "self_attn.v_proj"),
                         {"attention.output.dense": "self_attn.out_proj", "layernorm_before": "layer_norm1",
                          "layernorm_after": "layer_norm2", "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2"})
    patch = tensors.pop("embeddings.patch_embedding.weight")  # (D, C, P, P): CLIP's patch conv has no bias
    out |= {"timesformer.embeddings.patch_embeddings.projection.weight": patch,
            "timesformer.embeddings.patch_embeddings.projection.bias": patch.new_zeros(patch.shape[0]),
            "timesformer.embeddings.cls_token": tensors.pop("embeddings.class_embedding").view(1, 1, -1),  # (1, 1, D)
            "timesformer.embeddings.position_embeddings": tensors.pop("embeddings.position_embedding.weight")[None],
            "pre_norm.weight": tensors.pop("pre_layrnorm.weight"), "pre_norm.bias": tensors.pop("pre_layrnorm.bias"),
            "timesformer.layernorm.weight": tensors.pop("post_layernorm.weight"),
            "timesformer.layernorm.bias": tensors.pop("post_layernorm.bias")}
    return out


def _from_vit(tensors: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """``ViTModel`` names → TimeSformer names (the pooler, unused, is dropped); `tensors` is consumed."""
    out = _layer_tensors(tensors, num_layers, "layers.", ("attention.q_proj", "attention.k_proj", "attention.v_proj"),
                         {"attention.output.dense": "attention.o_proj", "layernorm_before": "layernorm_before",
                          "layernorm_after": "layernorm_after", "intermediate.dense": "mlp.fc1",
                          "output.dense": "mlp.fc2"})
    out |= {f"timesformer.{name}": tensors.pop(name) for name in list(tensors) if not name.startswith("pooler.")}
    for name in [n for n in tensors if n.startswith("pooler.")]:
        tensors.pop(name)
    return out


def _is_temporal(name: str) -> bool:
    """Whether state-dict entry `name` belongs to the temporal parts an image checkpoint lacks."""
    return name == TIME_EMBEDDINGS or any(f".{part}." in name for part in TEMPORAL_PARTS)


# ---- model -------------------------------------------------------------------------------------------------------


class VideoEncoderPreTrainedModel(StrictPreTrainedModel):
    config_class = VideoEncoderConfig
    base_model_prefix = "video_encoder"
    main_input_name = "video"
    input_modalities = ("video",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["TimesformerLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.LayerNorm):  # the pre-norm; TimesformerModel initialises its own modules
            module.reset_parameters()


class VideoEncoderModel(VideoEncoderPreTrainedModel):
    """TimeSformer over a clip: (B, T, C, H, W) pixels → (B, 1 + N*T, D) tokens, CLS first.

    Args:
        config: the encoder size; when ``pretrained_path`` is set (and the model is not being built on the meta
            device by ``from_pretrained``), the weights start from that checkpoint and the derived fields of
            `config` are filled from it.
    """

    def __init__(self, config: VideoEncoderConfig) -> None:
        load = config.pretrained_path is not None and not on_meta_device()
        if load:
            _checkpoint_architecture(config, config.pretrained_path)
        super().__init__(config)
        self.timesformer = TimesformerModel(config.to_timesformer())
        self.pre_norm = (nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.pre_norm
                         else nn.Identity())  # CLIP's ln_pre
        self.post_init()
        if load:
            self._load_checkpoint(config.pretrained_path)

    def _load_checkpoint(self, path: str) -> None:
        """Weights from the checkpoint at `path`: a TimeSformer as is (time embeddings resampled), an image model
        inflated (its weights in every frame's spatial path, the temporal branch initialised to add nothing)."""
        model_class, _ = IMAGE_MODELS[self.config.image_model_type]
        source = load_strict(model_class, path)
        if isinstance(source, TimesformerModel):
            tensors = {f"timesformer.{k}": v for k, v in source.state_dict().items()}
            tensors[TIME_EMBEDDINGS] = resize_time_embeddings(tensors[TIME_EMBEDDINGS], self.config.num_frames)
        else:
            theirs = dict(getattr(source, "vision_model", source).state_dict())
            tensors = (_from_clip if self.config.pre_norm else _from_vit)(theirs, self.config.num_layers)
            if theirs:
                raise CheckpointError(f"{path}: tensors {sorted(theirs)} have no place in the video encoder")
        missing, unexpected = self.load_state_dict(tensors, strict=False)
        if unexpected or not all(_is_temporal(name) for name in missing):
            raise CheckpointError(f"{path}: missing {sorted(n for n in missing if not _is_temporal(n))}, "
                                  f"unexpected {sorted(unexpected)}")
        if missing:  # an image checkpoint: the temporal branch starts as identity, as in the official TimeSformer
            with torch.no_grad():
                self.timesformer.embeddings.time_embeddings.zero_()
                for layer in self.timesformer.encoder.layer:
                    layer.temporal_dense.weight.zero_()
                    layer.temporal_dense.bias.zero_()
        logger.info("video encoder initialised from %s (%s)%s", path, type(source).__name__,
                    "; temporal parts new, temporal_dense and time embeddings zero" if missing else "")

    def set_num_frames(self, num_frames: int) -> None:
        """Encode clips of `num_frames` frames from now on: the time embeddings are resampled (nearest frame)."""
        embeddings = self.timesformer.embeddings
        if embeddings.time_embeddings.shape[1] == num_frames:
            return
        resized = resize_time_embeddings(embeddings.time_embeddings.detach(), num_frames)
        embeddings.time_embeddings = nn.Parameter(resized, requires_grad=embeddings.time_embeddings.requires_grad)
        self.config.num_frames = num_frames
        self.timesformer.config.num_frames = num_frames  # every TimeSformer block reads the frame count from here

    def temporal_prefixes(self) -> list[str]:
        """Module-name prefixes (inside this encoder) of the parts an image checkpoint lacks."""
        return ["timesformer.embeddings.time_embeddings"] + [
            f"timesformer.encoder.layer.{i}.{part}" for i in range(self.config.num_layers) for part in TEMPORAL_PARTS]

    def image_lr_scale(self, prefix: str, scale: float = 0.1) -> dict[str, float]:
        """The trainer's ``lr_scale`` for the official rule: `scale` for the CLIP-initialised weights under
        `prefix` (this encoder's name in the model), 1 for the temporal parts; {} if not CLIP-initialised."""
        if not self.config.is_clip_initialised:
            return {}
        return {prefix: scale, **{f"{prefix}.{p}": 1.0 for p in self.temporal_prefixes()}}

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Encode clips.

        Args:
            video: (B, T, C, H, W) normalised pixels; T, H, W as configured.

        Returns:
            (B, 1 + N*T, D) tokens after the final LayerNorm; index 0 is the CLS token, patch tokens in
            ``(n t)`` order.
        """
        c = self.config
        if video.ndim != 5 or video.shape[1] != c.num_frames or video.shape[-2:] != (c.image_size, c.image_size):
            raise ValueError(f"video must be (B, T={c.num_frames}, C, {c.image_size}, {c.image_size}); "
                             f"got {tuple(video.shape)}")
        tokens = self.pre_norm(self.timesformer.embeddings(video))  # (B, 1 + N*T, D)
        tokens = self.timesformer.encoder(tokens).last_hidden_state  # (B, 1 + N*T, D)
        return self.timesformer.layernorm(tokens)  # (B, 1 + N*T, D)


class VideoEncoderMixin:
    """What a video-language model whose encoder is its `video_encoder` attribute offers the tasks."""

    video_encoder: VideoEncoderModel

    def set_num_frames(self, num_frames: int) -> None:
        """Read clips of `num_frames` frames from now on (time embeddings resampled)."""
        self.video_encoder.set_num_frames(num_frames)

    def image_lr_scale(self, scale: float = 0.1) -> dict[str, float]:
        """The trainer's ``lr_scale`` for a CLIP-initialised video encoder (official 0.1x rule); {} otherwise."""
        return self.video_encoder.image_lr_scale("video_encoder", scale)
