"""mPLUG-video: TimeSformer → visual abstractor → prefix of a frozen causal language model.

Youku-mPLUG (Xu et al. 2023, Sec. 4.1; official code X-PLUG/Youku-mPLUG ``models/distributed_gpt3.py``):
the video encoder's tokens are summarised by M learnable queries (`Abstractor`), projected to the LM width and
prepended to the LM's token embeddings. The LM is fully frozen; the video encoder, abstractor and heads train.
Any ``AutoModelForCausalLM`` works as the LM: the study's own small Chinese GPT (`text_lm`) by default, a real
GPT-2 / Bloom / Qwen checkpoint from a local folder at full scale.

One sequence is ``[M prefix embeddings] [BOS] prompt answer [EOS]``. The loss is the token mean of the LM loss
over the answer tokens and EOS only; prefix, BOS, prompt and padding are masked (labels -100). Tasks:

- captioning: empty prompt, answer = caption; `generate` decodes greedily or with beam search (5, length
  penalty 1);
- classification: all 45 class names are ranked by their summed log-likelihood (EOS included) after the prompt
  ``视频标题：{title} 视频类目：`` (`score_continuations`, `classify`); an MLP head (Linear-ReLU-Linear, as the
  official ``DistributedGPT3_Cls``) on the LM's last-token state of [prefix + prompt] gives a second score set,
  and its training loss is the generation loss + cross-entropy (`classification_loss`);
- retrieval by matching: ``标题：{text} 这个视频与标题匹配吗？`` answered 是/否, scored log p(是) − log p(否) for every
  (video, text) pair, beside a small matching head on the same state (`match_scores`, `match_loss`);
- retrieval by contrast (dual encoder): the video encoder's CLS and the LM's last-token state of the text, each
  projected to 256-d and L2-normalised, InfoNCE both ways over all processes (`contrastive_loss`).

Because the LM is causal, its state at the last prompt token is the same whether or not the answer follows, so
the heads and the LM loss share one forward pass where the official code runs two.

Modality ablation: ``video=None`` is language only: the abstractor skips its cross-attention and its queries
pass through its MLP alone, so the LM still receives M trainable prefix embeddings (a soft prompt). An empty
title is vision only: the caller formats ``classification_prompt("")``. Both keep every sequence the same length
and structure, so only the information differs.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from vlstudy.data.classes import CLASS_NAMES
from vlstudy.data.prompts import MATCH_ANSWERS, PROTOCOL_TEXTS, classification_prompt, match_prompt
from vlstudy.models.abstractor import Abstractor, AbstractorConfig
from vlstudy.models.checkpoint_io import WEIGHTS_NAME, load_tensors_into, staged_directory, write_checkpoint
from vlstudy.models.losses import TEMPERATURE_RANGE, video_text_contrastive_loss
from vlstudy.models.text_lm import TextLMConfig, build_text_lm, load_text_lm
from vlstudy.models.video_encoder import VideoEncoder, VideoEncoderConfig, read_video_model

__all__ = ["MPLUGVideoConfig", "MPLUGVideo", "MPLUGVideoOutput", "TextBatch", "ClassScores", "MatchScores",
           "classification_prompt", "match_prompt", "tokenize_prompts", "MATCH_ANSWERS", "PROTOCOL_TEXTS"]

logger = logging.getLogger("vlstudy.models")

IGNORE_INDEX = -100


@dataclass
class MPLUGVideoConfig:
    """mPLUG-video. Widths are derived, never typed: the abstractor's key width is ``video.hidden_size`` and its
    projection outputs the LM's ``hidden_size``, read from the LM's own config.

    Attributes:
        video: TimeSformer size (and optional pretrained folder).
        abstractor: learnable queries and blocks.
        lm_path: local folder with the frozen causal LM and its tokenizer (`text_lm.save_text_lm` or a real
            checkpoint). None builds an untrained LM from `lm` (tests, benchmarks); a tokenizer must be given.
        lm: size of that untrained LM; unused when `lm_path` is set.
        max_text_length: longest tokenised text (BOS + prompt + answer + EOS); longer ones lose their tail.
        contrastive_dim: retrieval feature size (256 in the official config).
        temperature: initial contrastive temperature (0.07, learnable as in the official code, clamped to
            [0.001, 0.5]).
        num_classes: classification head outputs.
    """

    video: VideoEncoderConfig = field(default_factory=VideoEncoderConfig)
    abstractor: AbstractorConfig = field(default_factory=AbstractorConfig)
    lm_path: str | None = None
    lm: TextLMConfig = field(default_factory=TextLMConfig)
    max_text_length: int = 96
    contrastive_dim: int = 256
    temperature: float = 0.07
    num_classes: int = 45


@dataclass
class TextBatch:
    """Tokenised prompts (and answers), right-padded.

    Attributes:
        input_ids: (B, L) ``[BOS] prompt answer [EOS]``, padded with the pad id.
        attention_mask: (B, L) 1 on real tokens.
        labels: (B, L) the answer and EOS ids, -100 elsewhere.
        prompt_lengths: (B,) tokens up to the prompt's end (BOS included).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    prompt_lengths: torch.Tensor

    def to(self, device: torch.device | str) -> TextBatch:
        return TextBatch(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})


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


def _bos_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """[BOS], or nothing for tokenizers without one (e.g. Qwen)."""
    return [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []


def _encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def tokenize_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], answers: Sequence[str] | None,
                     max_length: int) -> TextBatch:
    """``[BOS] prompt answer [EOS]`` per row, right-padded, labels on the answer and EOS only.

    A plain function of the tokenizer, so a DataLoader's collate function can call it in worker processes.

    Args:
        tokenizer: the LM's tokenizer (BOS is left out when it has none).
        prompts: B prompts ("" for captioning).
        answers: B answers, or None for prompts alone (no EOS, no labels).
        max_length: longer rows lose their tail.

    Returns:
        A `TextBatch` on the CPU.
    """
    if answers is not None and len(answers) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    answer_ids = _encode(tokenizer, answers) if answers is not None else [None] * len(prompts)
    ids, labels, prompt_lengths = [], [], []
    for prompt, answer in zip(_encode(tokenizer, prompts), answer_ids):
        prompt = _bos_ids(tokenizer) + prompt
        answer = answer + [tokenizer.eos_token_id] if answer is not None else []
        ids.append(torch.tensor(prompt + answer, dtype=torch.long)[:max_length])
        labels.append(torch.tensor([IGNORE_INDEX] * len(prompt) + answer, dtype=torch.long)[:max_length])
        prompt_lengths.append(min(len(prompt), max_length))
    return TextBatch(
        input_ids=pad_sequence(ids, batch_first=True, padding_value=_pad_id(tokenizer)),  # (B, L)
        attention_mask=pad_sequence([torch.ones_like(r) for r in ids], batch_first=True),  # (B, L)
        labels=pad_sequence(labels, batch_first=True, padding_value=IGNORE_INDEX),  # (B, L)
        prompt_lengths=torch.tensor(prompt_lengths))


def _mlp_head(width: int, outputs: int) -> nn.Sequential:
    """Linear-ReLU-Linear, as the official ``cls_head``, after a parameter-free batch normalisation.

    The normalisation is this kit's addition. The official head reads GPT-3's states directly; a small frozen
    LM's last states differ little from one input to the next (at toy scale their spread across inputs is about
    a tenth of their size), and an MLP on them barely moves at fine-tuning learning rates. Standardising each
    feature over the batch, as linear probes of frozen features do (MAE), lets the head learn; it adds no
    parameters and uses running statistics at evaluation.
    """
    return nn.Sequential(nn.BatchNorm1d(width, affine=False), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, outputs))


class MPLUGVideo(nn.Module):
    """Video encoder + abstractor + frozen causal LM, with classification, matching and contrastive heads.

    Args:
        config: the model; the LM comes from ``config.lm_path`` (with its tokenizer) or is built from
            ``config.lm``.
        tokenizer: only with ``lm_path=None``: the tokenizer the untrained LM is sized for.
    """

    def __init__(self, config: MPLUGVideoConfig, tokenizer: PreTrainedTokenizerBase | None = None) -> None:
        super().__init__()
        if config.lm_path is not None:
            if tokenizer is not None:
                raise ValueError("tokenizer must be None when lm_path is set: it is loaded from lm_path")
            lm, tokenizer = load_text_lm(config.lm_path)
        elif tokenizer is None:
            raise ValueError("lm_path is None: pass the tokenizer the untrained LM is built for")
        else:
            lm = build_text_lm(config.lm, tokenizer)
        if tokenizer.eos_token_id is None:
            raise ValueError(f"the LM tokenizer ({config.lm_path}) has no eos token")
        self.config = config
        self.tokenizer = tokenizer
        self.lm = lm
        lm_width = lm.config.hidden_size
        self._check_positions(config.abstractor.num_queries + config.max_text_length,
                              f"{config.abstractor.num_queries} queries + max_text_length {config.max_text_length}")

        self.video_encoder = VideoEncoder(config.video)
        self.abstractor = Abstractor(config.abstractor, key_width=config.video.hidden_size, out_width=lm_width)
        self.cls_head = _mlp_head(lm_width, config.num_classes)
        self.match_head = _mlp_head(lm_width, 2)
        self.vision_proj = nn.Linear(config.video.hidden_size, config.contrastive_dim)
        self.text_proj = nn.Linear(lm_width, config.contrastive_dim)
        self.temp = nn.Parameter(torch.tensor(config.temperature))
        self._freeze_lm()

    def _freeze_lm(self) -> None:
        """Freeze the LM and prove it: only the non-LM parameters may train."""
        self.lm.requires_grad_(False)
        self.lm.eval()
        lm_count = sum(p.numel() for p in self.lm.parameters())
        self.num_total = sum(p.numel() for p in self.parameters())
        self.num_trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        if self.num_trainable != self.num_total - lm_count:
            raise RuntimeError(f"trainable parameters {self.num_trainable} != all {self.num_total} - LM {lm_count}")
        logger.info("mPLUG-video: %d trainable of %d parameters (%.2f%%); LM frozen (%d parameters)",
                    self.num_trainable, self.num_total, 100 * self.trainable_ratio, lm_count)

    def _check_positions(self, length: int, what: str) -> None:
        """Raise if `length` tokens exceed the LM's learned positions (models with position tables only)."""
        max_positions = getattr(self.lm.config, "max_position_embeddings", None)
        if max_positions is not None and length > max_positions:
            raise ValueError(f"{what} exceed the LM's {max_positions} positions")

    @property
    def trainable_ratio(self) -> float:
        """Trainable / all parameters (the paper: 1.7% with a frozen 7B Bloomz)."""
        return self.num_trainable / self.num_total

    @property
    def device(self) -> torch.device:
        return self.temp.device

    def train(self, mode: bool = True) -> MPLUGVideo:
        """Set training mode everywhere except the frozen LM, which stays in eval mode (no dropout)."""
        super().train(mode)
        self.lm.eval()
        return self

    # ---- inputs -------------------------------------------------------------------------------------------------

    def visual_prefix(self, video: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        """(B, T, C, H, W) clips → (B, Q, D_lm) prefix embeddings; None → the language-only soft prompt."""
        tokens = self.video_encoder(video) if video is not None else None  # (B, 1 + N*T, D)
        prefix = self.abstractor(tokens, batch_size=batch_size)  # (B, Q, D_lm)
        return prefix.to(self.lm.get_input_embeddings().weight.dtype)

    def tokenize(self, prompts: Sequence[str], answers: Sequence[str] | None = None) -> TextBatch:
        """`tokenize_prompts` with this model's tokenizer and length limit, on the model's device."""
        return tokenize_prompts(self.tokenizer, prompts, answers, self.config.max_text_length).to(self.device)

    # ---- the LM with a prefix -----------------------------------------------------------------------------------

    def _run_lm(self, prefix: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[prefix; token embeddings] through the LM → logits (B, Q+L, V) and last hidden states (B, Q+L, D)."""
        embeds = torch.cat([prefix, self.lm.get_input_embeddings()(input_ids)], dim=1)  # (B, Q+L, D)
        mask = torch.cat([attention_mask.new_ones(prefix.shape[:2]), attention_mask], dim=1)  # (B, Q+L)
        out = self.lm(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True)
        return out.logits, out.hidden_states[-1]

    def forward(self, video: torch.Tensor | None, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor | None = None) -> MPLUGVideoOutput:
        """LM loss of the text given the video prefix.

        Args:
            video: (B, T, C, H, W), or None for language only.
            input_ids: (B, L) from `tokenize`.
            attention_mask: (B, L).
            labels: (B, L), -100 where no loss is taken (prompt, padding).

        Returns:
            `MPLUGVideoOutput`; ``loss`` is the mean over label tokens.
        """
        prefix = self.visual_prefix(video, batch_size=input_ids.shape[0])  # (B, Q, D)
        logits, hidden = self._run_lm(prefix, input_ids, attention_mask)
        token_logits = logits[:, prefix.shape[1] - 1: -1]  # (B, L, V): row i scores token i
        loss = None
        if labels is not None:
            loss = F.cross_entropy(token_logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)
        return MPLUGVideoOutput(loss=loss, token_logits=token_logits, hidden_states=hidden)

    # ---- captioning ---------------------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, video: torch.Tensor | None, prompts: Sequence[str], num_beams: int = 1,
                 length_penalty: float = 1.0, max_new_tokens: int = 30) -> list[str]:
        """Decode a continuation of each prompt after the video prefix.

        Args:
            video: (B, T, C, H, W), or None for language only.
            prompts: B prompts ("" for captioning).
            num_beams: 1 = greedy; 5 = the paper's beam search.
            length_penalty: beam-score length exponent (1.0 in the paper).
            max_new_tokens: longest continuation.

        Returns:
            B decoded strings, special tokens removed.
        """
        prefix = self.visual_prefix(video, batch_size=len(prompts))  # (B, Q, D)
        tok, embed = self.tokenizer, self.lm.get_input_embeddings()
        rows = [torch.cat([prefix[b], embed(torch.tensor(_bos_ids(tok) + ids, device=self.device))])
                for b, ids in enumerate(_encode(tok, prompts))]  # each (Q + L_b, D)
        embeds = pad_sequence(rows, batch_first=True, padding_side="left")  # (B, Q + L, D)
        mask = pad_sequence([torch.ones(len(r), dtype=torch.long, device=self.device) for r in rows],
                            batch_first=True, padding_side="left")  # (B, Q + L)
        self._check_positions(embeds.shape[1] + max_new_tokens,
                              f"{embeds.shape[1]} prefix and prompt tokens + max_new_tokens {max_new_tokens}")
        new_tokens = self.lm.generate(
            inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens, num_beams=num_beams,
            length_penalty=length_penalty, do_sample=False, eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=_pad_id(self.tokenizer))  # (B, <= max_new_tokens): only the new tokens
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    # ---- classification -----------------------------------------------------------------------------------------

    def _score_candidates(self, prefix: torch.Tensor, prompts: Sequence[str],
                          candidates: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed log-likelihood of ``candidate [EOS]`` after each ``[prefix] [BOS] prompt``.

        Per video, the shared context runs once; its key/value cache is repeated K times and the K candidates
        (right-padded) run as one batch on top of it.

        Returns:
            scores (B, K) and the LM state at each prompt's last token (B, D).
        """
        tok, embed, num = self.tokenizer, self.lm.get_input_embeddings(), len(candidates)
        cand_rows = [torch.tensor(ids + [tok.eos_token_id]) for ids in _encode(tok, candidates)]
        cand_ids = pad_sequence(cand_rows, batch_first=True, padding_value=_pad_id(tok)).to(self.device)  # (K, C)
        cand_mask = pad_sequence([torch.ones_like(r) for r in cand_rows], batch_first=True).to(self.device)  # (K, C)
        scores, states = [], []
        for b, ids in enumerate(_encode(tok, prompts)):
            prompt_embeds = embed(torch.tensor(_bos_ids(tok) + ids, device=self.device))  # (L_b, D)
            context = torch.cat([prefix[b], prompt_embeds])[None]  # (1, P = Q + L_b, D)
            first = self.lm(inputs_embeds=context, use_cache=True, output_hidden_states=True)
            cache = first.past_key_values
            cache.batch_repeat_interleave(num)
            rest = self.lm(input_ids=cand_ids, past_key_values=cache,
                           attention_mask=torch.cat([cand_mask.new_ones(num, context.shape[1]), cand_mask], dim=1))
            logits = torch.cat([first.logits[:, -1:].expand(num, -1, -1), rest.logits[:, :-1]], dim=1)  # (K, C, V)
            token_logp = logits.float().log_softmax(-1).gather(-1, cand_ids[..., None]).squeeze(-1)  # (K, C)
            scores.append((token_logp * cand_mask).sum(dim=1))
            states.append(first.hidden_states[-1][0, -1])
        return torch.stack(scores), torch.stack(states)  # (B, K), (B, D)

    @torch.no_grad()
    def score_continuations(self, video: torch.Tensor | None, prompts: Sequence[str],
                            candidates: Sequence[str]) -> torch.Tensor:
        """Un-normalised summed log-likelihood of each candidate (+ EOS) after each prompt.

        Args:
            video: (B, T, C, H, W), or None for language only.
            prompts: B prompts, e.g. ``classification_prompt(title)``.
            candidates: K continuations shared by all prompts, e.g. the 45 class names.

        Returns:
            (B, K) log-likelihoods; softmax over K gives the class distribution.
        """
        return self._score_candidates(self.visual_prefix(video, len(prompts)), prompts, candidates)[0]

    @torch.no_grad()
    def classify(self, video: torch.Tensor | None, prompts: Sequence[str],
                 class_names: Sequence[str] = CLASS_NAMES) -> ClassScores:
        """Both classification score sets for B prompts: ranked class names and the MLP head."""
        scores, states = self._score_candidates(self.visual_prefix(video, len(prompts)), prompts, class_names)
        return ClassScores(generative=scores, head=self.cls_head(states))

    def classification_loss(self, video: torch.Tensor | None, prompts: Sequence[str], labels: torch.Tensor,
                            class_names: Sequence[str] = CLASS_NAMES) -> dict[str, torch.Tensor]:
        """Generation loss of the class name after the prompt + cross-entropy of the MLP head (official).

        Args:
            video: (B, T, C, H, W), or None.
            prompts: B classification prompts.
            labels: (B,) class indices.
            class_names: names indexed by label.

        Returns:
            ``{"loss", "lm_loss", "cls_loss"}`` scalars; loss = lm_loss + cls_loss.
        """
        batch = self.tokenize(prompts, [class_names[i] for i in labels.tolist()])
        out = self(video, batch.input_ids, batch.attention_mask, batch.labels)
        cls_loss = F.cross_entropy(self.cls_head(out.prompt_state(batch.prompt_lengths)), labels.to(self.device))
        return {"loss": out.loss + cls_loss, "lm_loss": out.loss, "cls_loss": cls_loss}

    # ---- retrieval by matching ----------------------------------------------------------------------------------

    def _answer_ids(self) -> tuple[int, int]:
        ids = _encode(self.tokenizer, MATCH_ANSWERS)
        if any(len(i) != 1 for i in ids):
            raise ValueError(f"matching needs 是 and 否 to be single tokens; the tokenizer gives {ids}")
        return ids[0][0], ids[1][0]

    @torch.no_grad()
    def match_scores(self, video: torch.Tensor, texts: Sequence[str], chunk_size: int = 256) -> MatchScores:
        """Score every (video, text) pair with the matching prompt.

        Args:
            video: (B, T, C, H, W).
            texts: K texts.
            chunk_size: pairs per LM batch.

        Returns:
            `MatchScores`, each (B, K).
        """
        yes, no = self._answer_ids()
        prefix = self.visual_prefix(video, batch_size=video.shape[0])  # (B, Q, D)
        batch = self.tokenize([match_prompt(t) for t in texts])  # (K, L)
        num_texts = len(texts)
        pairs = torch.arange(prefix.shape[0] * num_texts, device=self.device)  # pair p = (p // K, p % K)
        generative, head = [], []
        for chunk in pairs.split(chunk_size):
            v, t = chunk // num_texts, chunk % num_texts
            logits, hidden = self._run_lm(prefix[v], batch.input_ids[t], batch.attention_mask[t])
            last = prefix.shape[1] + batch.prompt_lengths[t] - 1  # (P,) last prompt position
            rows = torch.arange(len(chunk), device=self.device)
            logp = logits[rows, last].float().log_softmax(-1)  # (P, V) the next-token distribution
            generative.append(logp[:, yes] - logp[:, no])
            head_logits = self.match_head(hidden[rows, last])  # (P, 2)
            head.append(head_logits[:, 1] - head_logits[:, 0])
        return MatchScores(generative=rearrange(torch.cat(generative), "(b k) -> b k", k=num_texts),
                           head=rearrange(torch.cat(head), "(b k) -> b k", k=num_texts))

    def match_loss(self, video: torch.Tensor, texts: Sequence[str], is_match: torch.Tensor) -> dict[str, torch.Tensor]:
        """Train matching on B (video, text) pairs: LM loss of the answer 是/否 + cross-entropy of the head.

        Args:
            video: (B, T, C, H, W).
            texts: B texts, row i paired with video i.
            is_match: (B,) bool, whether text i belongs to video i (the caller builds the negatives).

        Returns:
            ``{"loss", "lm_loss", "match_loss"}`` scalars.
        """
        answers = [MATCH_ANSWERS[0] if m else MATCH_ANSWERS[1] for m in is_match.tolist()]
        batch = self.tokenize([match_prompt(t) for t in texts], answers)
        out = self(video, batch.input_ids, batch.attention_mask, batch.labels)
        head_loss = F.cross_entropy(self.match_head(out.prompt_state(batch.prompt_lengths)),
                                    is_match.long().to(self.device))
        return {"loss": out.loss + head_loss, "lm_loss": out.loss, "match_loss": head_loss}

    # ---- retrieval by contrast ----------------------------------------------------------------------------------

    def contrastive_features(self, video: torch.Tensor | None = None,
                             texts: Sequence[str] | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Dual-encoder features, L2-normalised: video (B, E) from the TimeSformer CLS, text (K, E) from the LM's
        state at the EOS of ``[BOS] text [EOS]``."""
        video_feat = text_feat = None
        if video is not None:
            video_feat = F.normalize(self.vision_proj(self.video_encoder(video)[:, 0]), dim=-1)  # (B, E)
        if texts is not None:
            batch = self.tokenize(texts, [""] * len(texts))  # (K, L) [BOS] text [EOS]
            with torch.no_grad():  # the LM is frozen and reads discrete tokens: no gradient flows into it
                hidden = self.lm(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                 output_hidden_states=True).hidden_states[-1]  # (K, L, D)
            last = batch.attention_mask.sum(dim=1) - 1  # (K,) EOS positions
            eos_state = hidden[torch.arange(len(texts), device=self.device), last].to(self.text_proj.weight.dtype)
            text_feat = F.normalize(self.text_proj(eos_state), dim=-1)  # (K, E)
        return video_feat, text_feat

    def contrastive_loss(self, video: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """InfoNCE both ways over B aligned (video, text) pairs, negatives gathered from every process."""
        with torch.no_grad():
            self.temp.clamp_(*TEMPERATURE_RANGE)
        video_feat, text_feat = self.contrastive_features(video, texts)
        return video_text_contrastive_loss(video_feat, text_feat, self.temp)

    # ---- save / load --------------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` with every trainable weight; the frozen LM is not
        copied, the config points to it (``lm_path``)."""
        if self.config.lm_path is None:
            raise ValueError("this model's LM was built from config.lm and has no folder: save it with "
                             "text_lm.save_text_lm and set lm_path")
        tensors = {name: t for name, t in self.state_dict().items() if not name.startswith("lm.")}
        with staged_directory(directory) as staging:
            write_checkpoint(staging, self.config, tensors)

    @classmethod
    def from_pretrained(cls, directory: str | Path, config: MPLUGVideoConfig | None = None) -> MPLUGVideo:
        """Load a model saved by `save_pretrained`; the LM is loaded from the config's ``lm_path``.

        Args:
            directory: the saved folder.
            config: a config to build instead of the saved one (another frame count: the time embeddings are
                resampled; another ``lm_path``); every saved tensor must still fit.

        Raises:
            FileNotFoundError: a missing file, named.
            CheckpointError: a missing, unexpected or wrongly shaped tensor, named with the file.
        """
        config, tensors = read_video_model(directory, MPLUGVideoConfig, config)
        model = cls(config)
        load_tensors_into(model, tensors, Path(directory) / WEIGHTS_NAME, skip_prefixes=("lm.",))
        return model
