"""Token batches for a decoder-only LM that answers a prompt: ``[BOS] prompt answer [EOS]``, labels on the answer.

mPLUG-video's objectives (Youku-mPLUG, official ``models/distributed_gpt3.py``) put the loss on the answer tokens
and EOS only: the prompt (and a video prefix before it) is context. These helpers are plain functions of the
tokenizer, so a DataLoader's collate function can call them in worker processes, and any decoder-only model of the
kit (mPLUG-video, a later mPLUG-2 decoder) can share them. A tokenizer without a BOS token (e.g. Qwen's) gets none.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

__all__ = ["IGNORE_INDEX", "TextBatch", "tokenize_prompts", "bos_ids", "encode", "pad_id", "score_on_cache"]

IGNORE_INDEX = -100


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


def bos_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """[BOS], or nothing for tokenizers without one (e.g. Qwen)."""
    return [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []


def encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, no special token added."""
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The pad id, or EOS for tokenizers without a pad token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def tokenize_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], answers: Sequence[str] | None,
                     max_length: int) -> TextBatch:
    """``[BOS] prompt answer [EOS]`` per row, right-padded, labels on the answer and EOS only.

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
    answer_ids = encode(tokenizer, answers) if answers is not None else [None] * len(prompts)
    ids, labels, prompt_lengths = [], [], []
    for prompt, answer in zip(encode(tokenizer, prompts), answer_ids):
        prompt = bos_ids(tokenizer) + prompt
        answer = answer + [tokenizer.eos_token_id] if answer is not None else []
        ids.append(torch.tensor(prompt + answer, dtype=torch.long)[:max_length])
        labels.append(torch.tensor([IGNORE_INDEX] * len(prompt) + answer, dtype=torch.long)[:max_length])
        prompt_lengths.append(min(len(prompt), max_length))
    return TextBatch(
        input_ids=pad_sequence(ids, batch_first=True, padding_value=pad_id(tokenizer)),  # (B, L)
        attention_mask=pad_sequence([torch.ones_like(r) for r in ids], batch_first=True),  # (B, L)
        labels=pad_sequence(labels, batch_first=True, padding_value=IGNORE_INDEX),  # (B, L)
        prompt_lengths=torch.tensor(prompt_lengths))


def score_on_cache(lm: torch.nn.Module, first, context_mask: torch.Tensor, candidates: Sequence[Sequence[int]],
                   eos: int, lm_kwargs: Callable[[torch.Tensor], dict]) -> torch.Tensor:
    """Summed log-likelihood (B, K) of each ``candidate [EOS]`` after each of B contexts the LM has already run.

    The contexts' last logits score every candidate's first token. The candidate tokens then run on top of the
    contexts' key/value cache, one group of equally long candidates at a time (the cache repeated once per member),
    so no candidate is padded (the 45 class names are 2 to 12 characters long: one padded batch of them spent ~70 %
    of its compute on padding). The EOS is scored by the logits after the last token, never run itself.

    Args:
        lm: the causal LM that produced `first`.
        first: its output on the left-padded contexts, run with ``use_cache=True`` (``logits`` and
            ``past_key_values``).
        context_mask: (B, P) 1 on the contexts' real positions.
        candidates: K token-id lists (no special token; an empty one scores EOS right after the context).
        eos: the EOS id.
        lm_kwargs: the LM's extra keyword arguments for (rows, n) position ids (e.g. ``position_ids``).
    """
    batch, device = context_mask.shape[0], context_mask.device
    lengths = context_mask.sum(dim=1)  # (B,)
    first_logp = first.logits[:, -1].float().log_softmax(-1)  # (B, V)
    scores = torch.zeros(batch, len(candidates), device=device)  # (B, K)
    for n in sorted({len(ids) for ids in candidates}):
        members = [k for k, ids in enumerate(candidates) if len(ids) == n]  # G candidates of n tokens
        if n == 0:
            scores[:, members] = first_logp[:, eos, None]
            continue
        group = len(members)
        ids = torch.tensor([candidates[k] for k in members], device=device)  # (G, n)
        targets = torch.cat([ids[:, 1:], ids.new_full((group, 1), eos)], dim=1)  # (G, n): what each predicts
        cache = copy.deepcopy(first.past_key_values)  # the forward appends to it: one copy per group
        cache.batch_repeat_interleave(group)  # (B*G) rows: context b for each member
        positions = lengths.repeat_interleave(group)[:, None] + torch.arange(n, device=device)  # (B*G, n)
        mask = torch.cat([context_mask.repeat_interleave(group, 0), context_mask.new_ones(batch * group, n)], 1)
        logits = lm(input_ids=ids.repeat(batch, 1), past_key_values=cache, attention_mask=mask,
                    **lm_kwargs(positions)).logits  # (B*G, n, V)
        token_logp = logits.float().log_softmax(-1).gather(-1, targets.repeat(batch, 1)[..., None])  # (B*G, n, 1)
        scores[:, members] = first_logp[:, ids[:, 0]] + token_logp.squeeze(-1).sum(1).view(batch, group)
    return scores
