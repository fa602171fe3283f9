"""The text-LM pre-training stage's pieces: a character-level Chinese tokenizer and a small GPT-style causal LM.

mPLUG-video freezes an off-the-shelf Chinese GPT-3 (1.3B / 2.7B; Youku-mPLUG, Xu et al. 2023, Sec. 4.1). No such
model can be downloaded here, so the study first trains a small one on the text of its own pre-training pool
(titles and captions): then the frozen decoder knows Chinese at toy scale and the prefix it is given has
something to steer. Real checkpoints (GPT-2, Bloom, Qwen style) load through the same `load_text_lm`: from a
local folder, safetensors only (a ``pytorch_model.bin`` is refused by name), strictly (`vlstudy.models.loading`).

Tokenizer: one token per character (Chinese text is mostly one token per character in any tokenizer). It is a
``tokenizers`` WordLevel model over single characters, wrapped in ``PreTrainedTokenizerFast`` so it saves and
loads with ``save_pretrained`` / ``AutoTokenizer.from_pretrained``. The vocabulary is counted here rather than
with ``tokenizers.trainers.WordLevelTrainer`` because the protocol needs characters the pool may lack
(the prompts ``视频标题：…视频类目：``, the answers 是/否, the 45 class names): `always_include` forces them in.
Special tokens, in id order: [PAD] [UNK] [BOS] [EOS] [CLS] [SEP] [MASK] (the last three serve the BERT-style
ALPRO text encoder). The tokenizer adds no special token by itself; each model adds its own explicitly.

LM: ``GPT2LMHeadModel`` from a small `TextLMConfig` (GPT-3 has the GPT-2 architecture), with the tokenizer's
bos/eos/pad ids. Training uses the shared trainer on a `PackedTextDataset` (nanoGPT-style packing: every text
is ``[BOS] text [EOS]``, the stream is cut into equal blocks).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from huggingface_hub.dataclasses import strict
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from torch.utils.data import Dataset
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from vlstudy.io import staged_directory
from vlstudy.models.loading import load_strict

__all__ = ["SPECIAL_TOKENS", "TextLMConfig", "train_char_tokenizer", "build_text_lm", "PackedTextDataset",
           "save_text_lm", "load_text_lm", "load_lm", "load_tokenizer"]

logger = logging.getLogger("vlstudy.models")

SPECIAL_TOKENS: dict[str, str] = {"pad_token": "[PAD]", "unk_token": "[UNK]", "bos_token": "[BOS]",
                                  "eos_token": "[EOS]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                                  "mask_token": "[MASK]"}


@strict
class TextLMConfig(PreTrainedConfig):
    """Size of the small causal LM. The vocabulary size is not a field: it is the tokenizer's. (A
    ``PreTrainedConfig`` so that it nests in ``MPLUGVideoConfig``; the LM itself is a ``GPT2LMHeadModel``.)

    Attributes:
        hidden_size: model width.
        num_layers: transformer blocks.
        num_heads: attention heads; divides `hidden_size`.
        max_positions: longest sequence (video prefix + text included, for mPLUG-video).
        dropout: residual, embedding and attention dropout. None by default, as in LLaMA-style LMs: on a CPU the
            Bernoulli masks cost ~0.8x the rest of a training step, and the study's LM without them reached a lower
            held-out loss in the same 4 epochs (0.474 against 0.524 with 0.1; 2026-12-01).
    """

    model_type = "vlstudy_text_lm"

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    max_positions: int = 256
    dropout: float = 0.0

    def __post_init__(self, **kwargs) -> None:
        super().__post_init__(**kwargs)
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")


def train_char_tokenizer(texts: Iterable[str], *, max_vocab: int | None = None, min_frequency: int = 1,
                         always_include: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """Build a character-level tokenizer from a corpus.

    Args:
        texts: the corpus (titles, captions).
        max_vocab: keep at most this many tokens, special tokens included (the most frequent characters).
        min_frequency: drop characters seen fewer times (unless in `always_include`).
        always_include: strings whose characters are always in the vocabulary (prompts, answers, class names).

    Returns:
        The tokenizer; ids 0..6 are the special tokens, then characters by decreasing frequency (ties by code
        point), then the forced characters that were left out.
    """
    counts = Counter(char for text in texts for char in text)
    ranked = sorted((c for c, n in counts.items() if n >= min_frequency), key=lambda c: (-counts[c], c))
    if max_vocab is not None:
        ranked = ranked[: max(0, max_vocab - len(SPECIAL_TOKENS))]
    forced = sorted({char for text in always_include for char in text} - set(ranked))
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS.values(), *ranked, *forced])}

    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # one piece per character
    backend.decoder = decoders.Fuse()  # join characters back without spaces
    return PreTrainedTokenizerFast(tokenizer_object=backend, **SPECIAL_TOKENS)


def build_text_lm(config: TextLMConfig, tokenizer: PreTrainedTokenizerBase) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2-style causal LM sized by `config`, with the tokenizer's vocabulary and ids."""
    gpt2 = GPT2Config(
        vocab_size=len(tokenizer), n_positions=config.max_positions, n_embd=config.hidden_size,
        n_layer=config.num_layers, n_head=config.num_heads, resid_pdrop=config.dropout,
        embd_pdrop=config.dropout, attn_pdrop=config.dropout, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
        activation_function="gelu_pytorch_tanh")  # GPT-2's tanh GELU as one fused kernel, not Python ops
    return GPT2LMHeadModel(gpt2)


class PackedTextDataset(Dataset):
    """Texts packed into equal training blocks for a causal LM (nanoGPT style).

    Every text becomes ``[BOS] text [EOS]``; the concatenated stream is cut into blocks of `block_size` tokens
    and the incomplete tail is dropped. Items are dicts ready for ``GPT2LMHeadModel(**item)``: ``input_ids``,
    ``attention_mask`` and ``labels`` (= input_ids; the model shifts them), each of shape (block_size,).

    Args:
        texts: the corpus.
        tokenizer: a tokenizer with bos and eos tokens.
        block_size: tokens per block.

    Raises:
        ValueError: when the corpus is shorter than one block.
    """

    def __init__(self, texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, block_size: int) -> None:
        encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        stream = [i for ids in encoded for i in (tokenizer.bos_token_id, *ids, tokenizer.eos_token_id)]
        num_blocks = len(stream) // block_size
        if num_blocks == 0:
            raise ValueError(f"{len(texts)} texts give {len(stream)} tokens, fewer than one block of {block_size}")
        logger.info("packed %d texts into %d blocks of %d tokens (%d tail tokens dropped)", len(texts),
                    num_blocks, block_size, len(stream) - num_blocks * block_size)
        self.blocks = torch.tensor(stream[: num_blocks * block_size]).view(num_blocks, block_size)  # (blocks, L)

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = self.blocks[index]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


def save_text_lm(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, directory: str | Path) -> None:
    """Save the LM and its tokenizer into one folder (safetensors), atomically per file."""
    with staged_directory(directory) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)


def load_lm(directory: str | Path, dtype: torch.dtype | None = None) -> PreTrainedModel:
    """A causal LM from a local folder (this stage's output or a real checkpoint): safetensors only, strictly.

    Raises:
        FileNotFoundError: the folder lacks ``config.json`` or weights; the message names the path.
        vlstudy.models.loading.CheckpointError: pickled weights (``pytorch_model.bin``), or tensors that do not fit.
    """
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory / 'config.json'}: no such file (expected a causal LM saved with "
                                f"save_pretrained)")
    return load_strict(AutoModelForCausalLM, directory, **({"dtype": dtype} if dtype is not None else {}))


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in a local folder; the error names the folder when it has none."""
    directory = Path(directory)
    if not any((directory / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        raise FileNotFoundError(f"{directory}: no tokenizer files (tokenizer.json / tokenizer_config.json)")
    return AutoTokenizer.from_pretrained(directory, local_files_only=True)


def load_text_lm(directory: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """`load_lm` and `load_tokenizer` of one folder."""
    return load_lm(directory), load_tokenizer(directory)
