"""mPLUG-video: TimeSformer → visual abstractor → prefix of a frozen causal language model.

Youku-mPLUG (Xu et al. 2023, Sec. 4.1; official code X-PLUG/Youku-mPLUG ``models/distributed_gpt3.py``): the video
encoder's tokens are summarised by M learnable queries (`Abstractor`), projected to the LM width and prepended to
the LM's token embeddings. The LM is fully frozen; the video encoder, abstractor and heads train. Any Hugging Face
causal LM works (GPT-2, Bloom, Qwen2, ...): the study's own small Chinese GPT by default (`text_lm`).

One sequence is ``[M prefix embeddings] [BOS] prompt answer [EOS]``; the loss is the token mean of the LM loss over
the answer tokens and EOS only (`vlstudy.models.prompting`). Classes (a backbone and thin task heads, one
checkpoint format; `StrictPreTrainedModel` explains which heads a checkpoint may lack or carry):

- `MPLUGVideoModel`: the backbone; LM loss (pre-training, captioning), `generate` (greedy or beam search, 5 beams,
  length penalty 1), `score_continuations`.
- `MPLUGVideoForContrastive`: + the official ``use_contrastive`` head (pre-training with a contrastive term,
  retrieval by contrast): the video CLS and the LM's state at the EOS of ``[BOS] text [EOS]``, each projected to
  256-d; InfoNCE both ways over all processes.
- `MPLUGVideoForClassification`: + an MLP head (the official ``DistributedGPT3_Cls``) on the LM's state at the last
  prompt token. `classify` ranks all 45 class names by their summed log-likelihood (EOS included) after
  ``视频标题：{title} 视频类目：`` and gives the head's logits beside; the loss is generation + cross-entropy.
- `MPLUGVideoForMatching`: + a matching head (retrieval by matching). ``标题：{text} 这个视频与标题匹配吗？``
  answered 是/否 is scored log p(是) − log p(否) for every pair, beside the head on the same state.
Each class holds exactly the heads its losses use, so every trainable parameter gets a gradient (as DDP expects).

The LM is causal, so its state at the last prompt token does not depend on the answer: heads and LM loss share one
forward pass (the official code runs two). ``video=None`` is language only (the abstractor's queries alone: a soft
prompt of M tokens); an empty title is vision only. The frozen LM is never copied into checkpoints (GBs at paper
scale): the config points to it (``lm_path``) and loading re-attaches it (`vlstudy.models.frozen_lm`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from transformers import AutoConfig, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from vlstudy.data.classes import CLASS_NAMES
from vlstudy.data.prompts import MATCH_ANSWERS, PROTOCOL_TEXTS, classification_prompt, match_prompt
from vlstudy.models.abstractor import Abstractor
from vlstudy.models.configuration_mplug_video import MPLUGVideoConfig
from vlstudy.models.frozen_lm import FrozenLMPreTrainedModel
from vlstudy.models.heads import ContrastiveHead, MLPHead
from vlstudy.models.prompting import IGNORE_INDEX, TextBatch, bos_ids, encode, pad_id, score_on_cache, tokenize_prompts
from vlstudy.models.text_lm import build_text_lm, load_lm, load_tokenizer
from vlstudy.models.video_encoder import VideoEncoderMixin, VideoEncoderModel, on_meta_device

__all__ = ["MPLUGVideoConfig", "MPLUGVideoModel", "MPLUGVideoForContrastive", "MPLUGVideoForClassification",
           "MPLUGVideoForMatching", "MPLUGVideoOutput", "TextBatch", "ClassScores", "MatchScores",
           "classification_prompt", "match_prompt", "tokenize_prompts", "MATCH_ANSWERS", "PROTOCOL_TEXTS"]

logger = logging.getLogger("vlstudy.models")


@dataclass
class MPLUGVideoOutput:
    """Attributes:
        loss: token-mean LM loss over the label tokens, or None without labels.
        token_logits: (B, L, V); row i scores ``input_ids[:, i]`` given the prefix and the tokens before it.
        hidden_states: (B, Q + L, D) the LM's last hidden states, prefix positions first.
    """

    loss: torch.Tensor | None
    token_logits: torch.Tensor
    hidden_states: torch.Tensor

    def prompt_state(self, prompt_lengths: torch.Tensor) -> torch.Tensor:
        """(B, D) the state at each prompt's last token (the last prefix position for an empty prompt)."""
        num_prefix = self.hidden_states.shape[1] - self.token_logits.shape[1]
        rows = torch.arange(self.hidden_states.shape[0], device=self.hidden_states.device)
        return self.hidden_states[rows, num_prefix + prompt_lengths - 1]


class ClassScores(NamedTuple):
    """generative: (B, C) summed log-likelihood of each class name; head: (B, C) MLP-head logits."""

    generative: torch.Tensor
    head: torch.Tensor


class MatchScores(NamedTuple):
    """generative: (B, K) log p(是) − log p(否); head: (B, K) matching-head logit(match) − logit(no match)."""

    generative: torch.Tensor
    head: torch.Tensor


class MPLUGVideoPreTrainedModel(VideoEncoderMixin, FrozenLMPreTrainedModel):
    config_class = MPLUGVideoConfig
    base_model_prefix = "mplug_video"
    main_input_name = "video"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    family_heads = ("contrastive", "cls_head", "match_head")

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """PyTorch's default initialisation of the kit's layers; the official one of the abstractor's queries and
        projection; the configured temperature. (The video encoder and the LM initialise their own.)"""
        if isinstance(module, (Abstractor, ContrastiveHead, nn.Linear, nn.LayerNorm, nn.BatchNorm1d)):
            module.reset_parameters()
        elif isinstance(module, nn.MultiheadAttention):
            module._reset_parameters()


class MPLUGVideoModel(MPLUGVideoPreTrainedModel):
    """Video encoder + abstractor + frozen causal LM (the backbone every task class extends).

    Args:
        config: the model; the LM and its tokenizer come from ``config.lm_path``, or the LM is built from
            ``config.lm`` (untrained) for `tokenizer`.
        tokenizer: only with ``lm_path=None``.
    """

    def __init__(self, config: MPLUGVideoConfig, tokenizer: PreTrainedTokenizerBase | None = None) -> None:
        super().__init__(config)
        if config.lm_path is not None:
            if tokenizer is not None:
                raise ValueError("tokenizer must be None when lm_path is set: it is loaded from lm_path")
            tokenizer = load_tokenizer(config.lm_path)
            lm = None if on_meta_device() else load_lm(config.lm_path)  # from_pretrained attaches it after loading
            lm_config = lm.config if lm is not None else AutoConfig.from_pretrained(config.lm_path,
                                                                                    local_files_only=True)
        elif tokenizer is None:
            raise ValueError("lm_path is None: pass the tokenizer the untrained LM is built for")
        else:
            lm = build_text_lm(config.lm, tokenizer)
            lm_config = lm.config
        if tokenizer.eos_token_id is None:
            raise ValueError(f"the LM tokenizer ({config.lm_path}) has no eos token")
        self.tokenizer = tokenizer
        self.max_positions = getattr(lm_config, "max_position_embeddings", None)  # None: no position table (ALiBi)
        self._check_positions(config.abstractor.num_queries + config.max_text_length,
                              f"{config.abstractor.num_queries} queries + max_text_length {config.max_text_length}")
        self.video_encoder = VideoEncoderModel(config.video)
        self.abstractor = Abstractor(config.abstractor, key_width=config.video.hidden_size,
                                     out_width=lm_config.hidden_size)
        self._build_heads(lm_config.hidden_size)
        self.lm = None
        self.post_init()
        if lm is not None:
            self.attach_lm(lm)

    def attach_lm(self, lm: PreTrainedModel) -> None:
        if lm.config.hidden_size != self.abstractor.proj.out_features:
            raise ValueError(f"{self.config.lm_path}: LM width {lm.config.hidden_size} but the abstractor projects "
                             f"to {self.abstractor.proj.out_features}")
        super().attach_lm(lm)

    def _build_heads(self, lm_width: int) -> None:
        """Task classes add their heads here (before ``post_init``)."""

    def _check_positions(self, length: int, what: str) -> None:
        """Raise if `length` tokens exceed the LM's learned positions (models with position tables only)."""
        if self.max_positions is not None and length > self.max_positions:
            raise ValueError(f"{what} exceed the LM's {self.max_positions} positions")

    # ---- inputs and the LM with a prefix ------------------------------------------------------------------------

    def visual_prefix(self, video: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        """(B, T, C, H, W) clips → (B, Q, D_lm) prefix embeddings; None → the language-only soft prompt."""
        tokens = self.video_encoder(video) if video is not None else None  # (B, 1 + N*T, D)
        prefix = self.abstractor(tokens, batch_size=batch_size)  # (B, Q, D_lm)
        return prefix.to(self.lm.get_input_embeddings().weight.dtype)

    def tokenize(self, prompts: Sequence[str], answers: Sequence[str] | None = None) -> TextBatch:
        """`tokenize_prompts` with this model's tokenizer and length limit, on the model's device."""
        return tokenize_prompts(self.tokenizer, prompts, answers, self.config.max_text_length).to(self.device)

    def _run_lm(self, prefix: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[prefix; token embeddings] through the LM → logits (B, Q+L, V) and last hidden states (B, Q+L, D)."""
        embeds = torch.cat([prefix, self.lm.get_input_embeddings()(input_ids)], dim=1)  # (B, Q+L, D)
        mask = torch.cat([attention_mask.new_ones(prefix.shape[:2]), attention_mask], dim=1)  # (B, Q+L)
        out = self.lm(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True, use_cache=False)
        return out.logits, out.hidden_states[-1]

    def forward(self, video: torch.Tensor | None, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor | None = None) -> MPLUGVideoOutput:
        """LM loss of the text given the video prefix.

        Args:
            video: (B, T, C, H, W), or None for language only.
            input_ids: (B, L) from `tokenize`.
            attention_mask: (B, L).
            labels: (B, L), -100 where no loss is taken (prompt, padding).
        """
        prefix = self.visual_prefix(video, batch_size=input_ids.shape[0])  # (B, Q, D)
        logits, hidden = self._run_lm(prefix, input_ids, attention_mask)
        token_logits = logits[:, prefix.shape[1] - 1: -1]  # (B, L, V): row i scores token i
        loss = None
        if labels is not None:
            loss = F.cross_entropy(token_logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)
        return MPLUGVideoOutput(loss=loss, token_logits=token_logits, hidden_states=hidden)

    # ---- decoding and scoring -----------------------------------------------------------------------------------

    @torch.no_grad()
    def generate_ids(self, video: torch.Tensor | None, prompts: Sequence[str], num_beams: int = 1,
                     length_penalty: float = 1.0, max_new_tokens: int = 30) -> torch.Tensor:
        """(B, <= max_new_tokens) new token ids continuing each prompt after the video prefix, EOS included, then
        padding (1 beam = greedy; the paper: 5 beams, length penalty 1)."""
        prefix = self.visual_prefix(video, batch_size=len(prompts))  # (B, Q, D)
        tok, embed = self.tokenizer, self.lm.get_input_embeddings()
        rows = [torch.cat([prefix[b], embed(torch.tensor(bos_ids(tok) + ids, device=self.device))])
                for b, ids in enumerate(encode(tok, prompts))]  # each (Q + L_b, D)
        embeds = pad_sequence(rows, batch_first=True, padding_side="left")  # (B, Q + L, D)
        mask = pad_sequence([torch.ones(len(r), dtype=torch.long, device=self.device) for r in rows],
                            batch_first=True, padding_side="left")  # (B, Q + L)
        self._check_positions(embeds.shape[1] + max_new_tokens,
                              f"{embeds.shape[1]} prefix and prompt tokens + max_new_tokens {max_new_tokens}")
        with self.lm_inference():
            return self.lm.generate(
                inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens, num_beams=num_beams,
                length_penalty=length_penalty, do_sample=False, eos_token_id=tok.eos_token_id,
                pad_token_id=pad_id(tok))  # (B, <= max_new_tokens): only the new tokens

    def generate(self, video: torch.Tensor | None, prompts: Sequence[str], num_beams: int = 1,
                 length_penalty: float = 1.0, max_new_tokens: int = 30) -> list[str]:
        """`generate_ids` decoded: B strings, special tokens removed."""
        ids = self.generate_ids(video, prompts, num_beams, length_penalty, max_new_tokens)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def _lm_kwargs(self, positions: torch.Tensor) -> dict:
        """Explicit position ids for LMs that take them (GPT-2, Qwen2): rows of a batch are left-padded to one
        length, so each row's positions must start at 0 at its first real token. (ALiBi LMs such as BLOOM read
        positions from the attention mask.)"""
        return {"position_ids": positions} if self._takes_positions else {}

    @property
    def _takes_positions(self) -> bool:
        return "position_ids" in inspect.signature(self.lm.forward).parameters

    @torch.no_grad()
    def _score_candidates(self, prefix: torch.Tensor, prompts: Sequence[str],
                          candidates: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed log-likelihood (B, K) of ``candidate [EOS]`` after each ``[prefix] [BOS] prompt``, and the LM state
        at each prompt's last token (B, D).

        The B contexts run once, as one left-padded batch; the candidates run on their key/value cache in groups of
        equal length (`vlstudy.models.prompting.score_on_cache`). (A loop over videos with one context at a time
        gives the same numbers, `tests/test_mplug_video.py` checks it.)
        """
        tok, embed = self.tokenizer, self.lm.get_input_embeddings()
        rows = [torch.cat([prefix[b], embed(torch.tensor(bos_ids(tok) + ids, device=self.device))])
                for b, ids in enumerate(encode(tok, prompts))]  # each (P_b = Q + L_b, D)
        context = pad_sequence(rows, batch_first=True, padding_side="left")  # (B, P, D)
        context_mask = pad_sequence([torch.ones(len(r), dtype=torch.long, device=self.device) for r in rows],
                                    batch_first=True, padding_side="left")  # (B, P)
        with self.lm_inference():
            first = self.lm(inputs_embeds=context, attention_mask=context_mask, use_cache=True,
                            output_hidden_states=True, **self._lm_kwargs((context_mask.cumsum(1) - 1).clamp(min=0)))
            scores = score_on_cache(self.lm, first, context_mask, encode(tok, candidates), tok.eos_token_id,
                                    self._lm_kwargs)  # (B, K)
        return scores, first.hidden_states[-1][:, -1]  # (B, K), (B, D): left-padded, so -1 is each prompt's end

    @torch.no_grad()
    def score_continuations(self, video: torch.Tensor | None, prompts: Sequence[str],
                            candidates: Sequence[str]) -> torch.Tensor:
        """(B, K) un-normalised summed log-likelihood of each of K candidates (+ EOS) after each of B prompts
        (e.g. the 45 class names after ``classification_prompt(title)``); softmax over K gives the distribution."""
        return self._score_candidates(self.visual_prefix(video, len(prompts)), prompts, candidates)[0]

    def _text_states(self, texts: Sequence[str]) -> torch.Tensor:
        """(K, D) the frozen LM's state at the EOS of ``[BOS] text [EOS]`` (no gradient: discrete input)."""
        batch = self.tokenize(texts, [""] * len(texts))  # (K, L)
        with torch.no_grad():
            hidden = self.lm(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False,
                             output_hidden_states=True).hidden_states[-1]  # (K, L, D)
        last = batch.attention_mask.sum(dim=1) - 1  # (K,) EOS positions
        return hidden[torch.arange(len(texts), device=self.device), last]


class MPLUGVideoForContrastive(MPLUGVideoModel):
    """The backbone + the contrastive head (official ``use_contrastive``): video CLS ↔ LM text state."""

    task_heads = ("contrastive",)

    def _build_heads(self, lm_width: int) -> None:
        super()._build_heads(lm_width)
        self.contrastive = ContrastiveHead(self.config.video.hidden_size, lm_width, self.config.contrastive_dim,
                                           self.config.temperature)

    def contrastive_features(self, video: torch.Tensor | None = None,
                             texts: Sequence[str] | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Dual-encoder features, L2-normalised: video (B, E) from the TimeSformer CLS, text (K, E) from the LM."""
        video_feat = text_feat = None
        if video is not None:
            video_feat = self.contrastive.project_video(self.video_encoder(video)[:, 0])  # (B, E)
        if texts is not None:
            text_feat = self.contrastive.project_text(self._text_states(texts))  # (K, E)
        return video_feat, text_feat

    def contrastive_loss(self, video: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """InfoNCE both ways over B aligned (video, text) pairs, negatives gathered from every process."""
        self.contrastive.clamp_temperature()
        return self.contrastive.loss(*self.contrastive_features(video, texts))


class MPLUGVideoForClassification(MPLUGVideoModel):
    """The backbone + the MLP classification head on the LM's last prompt state."""

    task_heads = ("cls_head",)

    def _build_heads(self, lm_width: int) -> None:
        super()._build_heads(lm_width)
        self.cls_head = MLPHead(lm_width, self.config.num_classes, normalise=True)

    @torch.no_grad()
    def classify(self, video: torch.Tensor | None, prompts: Sequence[str],
                 class_names: Sequence[str] = CLASS_NAMES) -> ClassScores:
        """Both classification score sets for B prompts: ranked class names and the MLP head."""
        scores, states = self._score_candidates(self.visual_prefix(video, len(prompts)), prompts, class_names)
        return ClassScores(generative=scores, head=self.cls_head(states))

    def classification_loss(self, video: torch.Tensor | None, prompts: Sequence[str], labels: torch.Tensor,
                            class_names: Sequence[str] = CLASS_NAMES) -> dict[str, torch.Tensor]:
        """``{"loss", "lm_loss", "cls_loss"}``: generation loss of the class name after the prompt + the head's
        cross-entropy (official); `labels` (B,) index `class_names`."""
        batch = self.tokenize(prompts, [class_names[i] for i in labels.tolist()])
        out = self(video, batch.input_ids, batch.attention_mask, batch.labels)
        cls_loss = F.cross_entropy(self.cls_head(out.prompt_state(batch.prompt_lengths)), labels.to(self.device))
        return {"loss": out.loss + cls_loss, "lm_loss": out.loss, "cls_loss": cls_loss}


class MPLUGVideoForMatching(MPLUGVideoModel):
    """The backbone + a matching head on the LM's last prompt state (retrieval by matching)."""

    task_heads = ("match_head",)

    def _build_heads(self, lm_width: int) -> None:
        super()._build_heads(lm_width)
        self.match_head = MLPHead(lm_width, 2, normalise=True)

    def _answer_ids(self) -> tuple[int, int]:
        ids = encode(self.tokenizer, MATCH_ANSWERS)
        if any(len(i) != 1 for i in ids):
            raise ValueError(f"matching needs 是 and 否 to be single tokens; the tokenizer gives {ids}")
        return ids[0][0], ids[1][0]

    @torch.no_grad()
    def match_scores(self, video: torch.Tensor, texts: Sequence[str], chunk_size: int = 256) -> MatchScores:
        """`MatchScores`, each (B, K): every pair of B videos (B, T, C, H, W) and K texts, `chunk_size` per batch."""
        yes, no = self._answer_ids()
        prefix = self.visual_prefix(video, batch_size=video.shape[0])  # (B, Q, D)
        batch = self.tokenize([match_prompt(t) for t in texts])  # (K, L)
        num_texts = len(texts)
        pairs = torch.arange(prefix.shape[0] * num_texts, device=self.device)  # pair p = (p // K, p % K)
        generative, head = [], []
        embed = self.lm.get_input_embeddings()
        for chunk in pairs.split(chunk_size):
            v, t = chunk // num_texts, chunk % num_texts
            embeds = torch.cat([prefix[v], embed(batch.input_ids[t])], dim=1)  # (P, Q + L, D)
            mask = torch.cat([batch.attention_mask.new_ones(len(chunk), prefix.shape[1]), batch.attention_mask[t]], 1)
            with self.lm_inference():  # the LM body only: the vocabulary projection is needed at one position
                hidden = self.lm.base_model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state  # (P, Q+L, D)
            last = prefix.shape[1] + batch.prompt_lengths[t] - 1  # (P,) last prompt position
            state = hidden[torch.arange(len(chunk), device=self.device), last]  # (P, D)
            logp = self.lm.get_output_embeddings()(state).float().log_softmax(-1)  # (P, V) the next-token distribution
            generative.append(logp[:, yes] - logp[:, no])
            head_logits = self.match_head(state)  # (P, 2)
            head.append(head_logits[:, 1] - head_logits[:, 0])
        return MatchScores(generative=rearrange(torch.cat(generative), "(b k) -> b k", k=num_texts),
                           head=rearrange(torch.cat(head), "(b k) -> b k", k=num_texts))

    def match_loss(self, video: torch.Tensor, texts: Sequence[str], is_match: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss", "lm_loss", "match_loss"}`` on B (video, text) pairs, `is_match` (B,) bool: LM loss of the
        answer 是/否 + the head's cross-entropy (the caller builds the negatives)."""
        answers = [MATCH_ANSWERS[0] if m else MATCH_ANSWERS[1] for m in is_match.tolist()]
        batch = self.tokenize([match_prompt(t) for t in texts], answers)
        out = self(video, batch.input_ids, batch.attention_mask, batch.labels)
        head_loss = F.cross_entropy(self.match_head(out.prompt_state(batch.prompt_lengths)),
                                    is_match.long().to(self.device))
        return {"loss": out.loss + head_loss, "lm_loss": out.loss, "match_loss": head_loss}
