"""Tiny model folders for the model tests: random causal LMs of three families with the kit's character tokenizer,
and tiny video-encoder / mPLUG-video sizes. Everything is built offline and saved with ``save_pretrained``."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import BloomConfig, BloomForCausalLM, GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

from vlstudy.data.prompts import PROTOCOL_TEXTS
from vlstudy.models.abstractor import AbstractorConfig
from vlstudy.models.mplug_video import MPLUGVideoConfig
from vlstudy.models.text_lm import train_char_tokenizer
from vlstudy.models.video_encoder import VideoEncoderConfig

CORPUS = ["小猫在草地上玩球", "小狗在公园里奔跑", "一个人在厨房里做饭", "篮球比赛的精彩瞬间"]
LM_WIDTH = 48
VIDEO = dict(image_size=32, patch_size=16, num_frames=2, hidden_size=32, num_layers=1, num_heads=2)


def tokenizer(texts: list[str] = CORPUS, always_include=PROTOCOL_TEXTS):
    """The kit's character tokenizer over `texts` (+ every character the protocol scores)."""
    return train_char_tokenizer(texts, always_include=always_include)


def save_tiny_lm(kind: str, tok, folder: Path, seed: int = 0, init_std: float = 0.02) -> Path:
    """A random causal LM of family `kind` ("gpt2", "bloom", "qwen2") sized for `tok`, saved with its tokenizer."""
    torch.manual_seed(seed)
    ids = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
               pad_token_id=tok.pad_token_id, initializer_range=init_std)
    if kind == "gpt2":
        lm = GPT2LMHeadModel(GPT2Config(n_embd=LM_WIDTH, n_layer=2, n_head=2, n_positions=128, resid_pdrop=0.0,
                                        embd_pdrop=0.0, attn_pdrop=0.0, **ids))
    elif kind == "bloom":
        lm = BloomForCausalLM(BloomConfig(hidden_size=LM_WIDTH, n_layer=2, n_head=2, **ids))
    elif kind == "qwen2":
        lm = Qwen2ForCausalLM(Qwen2Config(hidden_size=LM_WIDTH, intermediate_size=96, num_hidden_layers=2,
                                          num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                                          tie_word_embeddings=True, **ids))
    else:
        raise ValueError(kind)
    lm.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def mplug_config(lm_dir: Path, **overrides) -> MPLUGVideoConfig:
    """A tiny mPLUG-video over the LM folder `lm_dir`: 2 frames of 32 px, 4 queries."""
    video = VideoEncoderConfig(**{**VIDEO, **overrides.pop("video", {})})
    return MPLUGVideoConfig(video=video, abstractor=AbstractorConfig(num_queries=4, num_heads=2), lm_path=str(lm_dir),
                            **{"max_text_length": 48, **overrides})


def backward_nodes(tensor: torch.Tensor) -> set[str]:
    """The kinds of autograd node (e.g. ``IndexSelectBackward0``) in the graph that computed `tensor`."""
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack.extend(parent for parent, _ in node.next_functions)
    return {type(node).__name__ for node in seen}
