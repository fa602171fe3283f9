"""Text-LM pre-training: the small Chinese causal LM that mPLUG-video keeps frozen, and its tokenizer.

The paper freezes an off-the-shelf Chinese GPT-3 (1.3B / 2.7B). At toy scale there is none, so this task trains
one on text: the pre-training pool's titles plus a corpus of web-like text (for mini-Youku, ``text_corpus.txt``,
which describes no video of the dataset). The tokenizer is character-level and always covers every character the
protocol scores (prompts, 是/否, the 45 class names). The result is saved with ``save_pretrained`` and is what
``lm_path`` of the video stages points at; for real data, point ``lm_path`` at a real checkpoint instead.

Outputs in ``paths.out``: the LM and tokenizer (``config.json``, ``model.safetensors``, tokenizer files) and
``train_log.jsonl``; the returned result holds the validation loss and perplexity, vocabulary and parameter count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

from vlstudy.data.classes import CLASS_NAMES
from vlstudy.data.prompts import MATCH_ANSWERS, PROTOCOL_TEXTS, classification_prompt, match_prompt
from vlstudy.distributed import is_main_process
from vlstudy.models.text_lm import PackedTextDataset, TextLMConfig, build_text_lm, save_text_lm, train_char_tokenizer
from vlstudy.tasks.common import PhaseTimer, TaskPaths, TaskResult, load_split, training_record
from vlstudy.train.logging import publish_log
from vlstudy.train.trainer import TrainConfig, Trainer

__all__ = ["TextLMTaskConfig", "CONFIG", "run", "corpus", "held_out", "split_documents", "first_block",
           "protocol_probe"]

MATCH_QUESTION = match_prompt("")[len("标题："):]  # " 这个视频与标题匹配吗？": what precedes the answer 是/否
CLASS_FIELD = classification_prompt("").rsplit(" ", 1)[-1]  # "视频类目：": what precedes the class name


@dataclass
class TextLMTaskConfig:
    """Attributes:
        model: the LM's size.
        train: optimisation.
        corpus_files: text files (one text per line, pages separated by empty lines) added to the pool's titles.
        block_size: tokens per training block; at least the longest sequence the video stages give the LM
            (visual prefix + prompt + answer), or the LM meets positions it was never trained at.
        max_vocab: keep at most this many characters (None: all).
        val_fraction: share of documents held out for the validation loss.
        seed: the held-out split.
        nproc: processes the stage launches this task on (torchrun, one per GPU); 1 runs it in the
            notebook's kernel.
    """

    model: TextLMConfig = field(default_factory=TextLMConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=50,
                                                                    epochs=4, batch_size=32, log_every=50))
    corpus_files: list[str] = field(default_factory=lambda: ["data/mini_youku/text_corpus.txt"])
    block_size: int = 128
    max_vocab: int | None = None
    val_fraction: float = 0.05
    seed: int = 0
    nproc: int = 1


CONFIG = TextLMTaskConfig


def corpus(config: TextLMTaskConfig, data_dir: str | Path) -> list[list[str]]:
    """The training documents: each of the filtered pool's titles, then the corpus files' pages.

    A corpus file holds one text per line and pages separated by empty lines; a page's texts stay together and in
    order in the packed stream (``[BOS] text [EOS] [BOS] text [EOS] …``), so the LM learns to read what came before
    its BOS — where mPLUG-video puts its visual prefix. Shuffled single lines would teach it the opposite: that
    whatever precedes BOS is unrelated.
    """
    documents = [[t] for t in load_split(data_dir, "pretrain", "pool")["title"] if t]
    for name in config.corpus_files:
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"text-LM corpus file {path} does not exist (params: corpus_files)")
        page: list[str] = []
        for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
            if line.strip():
                page.append(line.strip())
            elif page:
                documents.append(page)
                page = []
    return documents


def held_out(config: TextLMTaskConfig, documents: list[list[str]]) -> np.ndarray:
    """Indices of the documents held out for validation, drawn with the seed."""
    order = np.random.default_rng(config.seed).permutation(len(documents))
    return order[:max(1, int(len(documents) * config.val_fraction))]


def split_documents(config: TextLMTaskConfig, documents: list[list[str]]) -> tuple[list[str], list[str]]:
    """(train texts, held-out texts): whole documents held out (`held_out`); each keeps its order."""
    val = set(held_out(config, documents).tolist())
    return ([text for i, doc in enumerate(documents) if i not in val for text in doc],
            [text for i in held_out(config, documents) for text in documents[i]])


@torch.no_grad()
def protocol_probe(lm, tokenizer, pages: list[list[str]], block_size: int) -> dict[str, float]:
    """How well the LM answers the two protocol questions from text alone, on held-out pages.

    mPLUG-video reads a category or a 是/否 answer off its frozen LM after a visual prefix; the LM can do that only
    if it learned to read them off what precedes the question. On each page that holds a matching line
    (``标题：… 这个视频与标题匹配吗？是/否``) the answer is taken as the likelier of 是 and 否 after the page's earlier
    lines (packed as in training, the question as the last text); on each page with a category line
    (``视频标题：… 视频类目：<name>``) the 45 class names are ranked by their summed log-likelihood (+ EOS).

    Returns:
        ``match_accuracy`` and ``class_top1`` (percent) and the numbers of pages they were measured on.
    """
    device = next(lm.parameters()).device
    yes, no = (tokenizer(a, add_special_tokens=False)["input_ids"][0] for a in MATCH_ANSWERS)
    names = [tokenizer(n, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for n in CLASS_NAMES]
    match_right, class_right, n_match, n_class = 0, 0, 0, 0
    for page in pages:
        for i, line in enumerate(page):
            for marker, kind in ((MATCH_QUESTION, "match"), (CLASS_FIELD, "class")):
                if marker not in line:
                    continue
                question, answer = line[: line.index(marker) + len(marker)], line[line.index(marker) + len(marker):]
                context = [t for text in page[:i] for t in (tokenizer.bos_token_id, *tokenizer(
                    text, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id)]
                context += [tokenizer.bos_token_id, *tokenizer(question, add_special_tokens=False)["input_ids"]]
                if kind == "match":
                    ids = torch.tensor(context[-block_size:], device=device)[None]
                    logits = lm(input_ids=ids).logits[0, -1]
                    match_right += int((logits[yes] > logits[no]).item() == (answer == MATCH_ANSWERS[0]))
                    n_match += 1
                elif answer in CLASS_NAMES:
                    rows = [torch.tensor((context + n)[-block_size:]) for n in names]
                    batch = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True,
                                                            padding_value=tokenizer.pad_token_id).to(device)
                    logp = lm(input_ids=batch).logits.float().log_softmax(-1)
                    scores = [float(logp[k, len(r) - len(n) - 1: len(r) - 1].gather(
                        -1, r[len(r) - len(n):, None].to(device)).sum()) for k, (r, n) in enumerate(zip(rows, names))]
                    class_right += int(int(np.argmax(scores)) == CLASS_NAMES.index(answer))
                    n_class += 1
    return {"match_accuracy": 100 * match_right / max(1, n_match), "class_top1": 100 * class_right / max(1, n_class),
            "probe_match_pages": n_match, "probe_class_pages": n_class}


def first_block(config: TextLMTaskConfig, documents: list[list[str]]):
    """(tokenizer, the first packed training block): what the LM sees in one row of a batch."""
    train_texts, _ = split_documents(config, documents)
    tokenizer = train_char_tokenizer(train_texts, max_vocab=config.max_vocab, always_include=PROTOCOL_TEXTS)
    return tokenizer, PackedTextDataset(train_texts, tokenizer, config.block_size)[0]["input_ids"]


def run(config: TextLMTaskConfig, paths: TaskPaths) -> TaskResult | None:
    timer = PhaseTimer()
    documents = corpus(config, paths.data)
    train_texts, val_texts = split_documents(config, documents)
    tokenizer = train_char_tokenizer(train_texts, max_vocab=config.max_vocab, always_include=PROTOCOL_TEXTS)
    model = build_text_lm(config.model, tokenizer)
    train_set = PackedTextDataset(train_texts, tokenizer, config.block_size)
    val_set = PackedTextDataset(val_texts, tokenizer, config.block_size)

    def loss_fn(lm, batch):
        return {"loss": lm(**batch).loss}

    def eval_fn(lm, step):
        device = next(lm.parameters()).device
        losses = [lm(**{k: v.to(device) for k, v in default_collate([val_set[i] for i in chunk]).items()}).loss
                  for chunk in np.array_split(np.arange(len(val_set)), max(1, len(val_set) // 64))]
        loss = float(torch.stack(losses).mean())
        return {"val_loss": loss, "val_perplexity": math.exp(loss)}

    with timer("train"):
        summary = Trainer(model, config.train, train_set, default_collate, loss_fn, Path(paths.work),
                          eval_fn=eval_fn).fit()
    if not is_main_process():
        return None
    out = Path(paths.out)
    model.eval()
    with timer("evaluate"):
        pages = [documents[i] for i in held_out(config, documents) if len(documents[i]) > 1]
        probe = protocol_probe(model, tokenizer, pages, config.block_size)
    with timer("write"):
        save_text_lm(model, tokenizer, out)
        publish_log(summary.log_path, out / "train_log.jsonl")
    return TaskResult(
        metrics={"val_loss": summary.metrics["val_loss"], "val_perplexity": summary.metrics["val_perplexity"],
                 **probe},
        protocol={"val_fraction": config.val_fraction, "block_size": config.block_size,
                  "train_texts": len(train_texts), "val_texts": len(val_texts), "tokenizer": "characters"},
        training=training_record(summary, model, vocab_size=len(tokenizer), train_blocks=len(train_set)),
        timings=timer.seconds)
