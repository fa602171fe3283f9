"""Can the frozen LM answer 是/否 matching from text at all, and what in its corpus would teach it? (issue 13, item 4)

mPLUG-video's 是/否 matching reads the answer off its frozen LM after the visual prefix. The LM can only do that
if it learned, from text, to compare a title with what precedes the question. `pretrain_text_lm`'s protocol probe
says it did not (是/否 right ~52 % of the time on held-out pages). Its corpus (`text.corpus_lines`) holds one
matching question per page — 2,000 examples of the comparison in all. This trains the text LM exactly as the stage
does (its params, its pool titles) on corpus variants and scores each on the same fresh probe pages:

* ``study``: the study's corpus (pages 0 .. corpus_videos-1 of the generator; checked equal to
  ``data/mini_youku/text_corpus.txt``);
* ``pages_x4``: four times the pages, the same format (pages 0 .. 4 x corpus_videos-1);
* ``questions_x4``: the study's pages, each followed by three more matching questions about the same page (each a
  paraphrased caption of the page's video or of another video, 是 or 否 with probability 1/2);
* ``captioned_x4``: as ``questions_x4``, each extra question right after a fresh caption of the page's video, as the
  page's own question is (at the end of a page the caption may lie outside the LM's 128-token window);
* ``drills_x4``: the study's pages plus, per page, four short two-line pages of their own (a caption of a fresh
  video, then a matching question about it, 是 or 否 with probability 1/2): the comparison alone, many times, without
  the rest of a page around it (the fresh videos come from generator indices neither the study nor the probe uses);
* ``drills_only``: those 8,000 two-line pages alone (with the pool's titles, as every variant): the comparison as
  the LM's only question.

The probe pages are drawn from the generator's stream at indices no variant trains on. It prints each variant's
matching accuracy with a 95 % Wilson interval, its class top-1 from the title (the other protocol question), its
matching accuracy on 600 fresh two-line drill pages and on its own corpus's first 600 pages (questions it trained
on: can it even fit them?), and its training seconds. Nothing is written outside a temporary folder.

    python benchmarks/text_lm_matching.py                           # all variants (~25 min on 2 cores)
    python benchmarks/text_lm_matching.py --variants study questions_x4 --probe-pages 300
    python benchmarks/text_lm_matching.py --variants captioned_x4                # ~5 min
    python benchmarks/text_lm_matching.py --variants captioned_x4 study --hidden-size 256   # a wider LM, ~18 min
    python benchmarks/text_lm_matching.py --variants drills_x4 drills_only                 # ~10 min
    python benchmarks/text_lm_matching.py --variants drills_only --epochs 12               # ~9 min
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from vlstudy.config import read_params
from vlstudy.data.classes import NUM_CLASSES
from vlstudy.data.mini_youku import text as T
from vlstudy.data.mini_youku.generate import _TASK_CODE, _draw_cues
from vlstudy.data.mini_youku.generate import text_corpus as generator_corpus
from vlstudy.data.prompts import MATCH_ANSWERS, match_prompt
from vlstudy.models.text_lm import load_text_lm
from vlstudy.pipeline.runner import validate_section
from vlstudy.tasks import text_lm
from vlstudy.tasks.common import TaskPaths

PROBE_OFFSET = 10**6  # probe pages come from generator indices no variant trains on


def pages(cfg, start: int, stop: int) -> list[tuple[list[str], T.Cues]]:
    """The generator's corpus pages ``start .. stop-1`` (as `generate.text_corpus` draws them), with their video's
    cues."""
    out = []
    for i in range(start, stop):
        rng = np.random.default_rng([cfg.seed, _TASK_CODE["corpus"], i])
        cues = _draw_cues(int(rng.integers(NUM_CLASSES)), cfg.content_cues, cfg.night, rng)
        other = _draw_cues(int(rng.integers(NUM_CLASSES)), cfg.content_cues, cfg.night, rng)
        out.append((T.corpus_lines(cues, other, rng), cues))
    return out


def more_questions(page: list[str], cues: T.Cues, cfg, index: int, extra: int, *, captioned: bool = False
                   ) -> list[str]:
    """`page` followed by `extra` matching questions about its video, from a generator of their own; with
    `captioned`, each question follows a fresh caption of the page's video (as the page's own question does)."""
    rng = np.random.default_rng([cfg.seed, _TASK_CODE["corpus"], index, 1])
    lines = list(page)
    for _ in range(extra):
        if captioned:
            lines.append(T.caption(cues, rng))
        match = bool(rng.random() < 0.5)
        other = cues if match else _draw_cues(int(rng.integers(NUM_CLASSES)), cfg.content_cues, cfg.night, rng)
        lines.append(f"{match_prompt(T.caption(other, rng))}{MATCH_ANSWERS[0] if match else MATCH_ANSWERS[1]}")
    return lines


def drills(cfg, index: int, count: int) -> list[list[str]]:
    """`count` two-line pages, each a caption of a fresh video and one matching question about it (the page's
    own video or another, 是 or 否 with probability 1/2)."""
    rng = np.random.default_rng([cfg.seed, _TASK_CODE["corpus"], index, 2])
    out = []
    for _ in range(count):
        cues = _draw_cues(int(rng.integers(NUM_CLASSES)), cfg.content_cues, cfg.night, rng)
        match = bool(rng.random() < 0.5)
        other = cues if match else _draw_cues(int(rng.integers(NUM_CLASSES)), cfg.content_cues, cfg.night, rng)
        out.append([T.caption(cues, rng),
                    f"{match_prompt(T.caption(other, rng))}{MATCH_ANSWERS[0] if match else MATCH_ANSWERS[1]}"])
    return out


def resized(config: text_lm.TextLMTaskConfig, hidden_size: int | None, layers: int | None, epochs: int | None
            ) -> text_lm.TextLMTaskConfig:
    """The stage's config with another LM width (heads keep 32 dimensions each), depth or epoch count."""
    model = copy.deepcopy(config.model)
    if hidden_size:
        model.hidden_size, model.num_heads = hidden_size, max(1, hidden_size // 32)
    if layers:
        model.num_layers = layers
    train = dataclasses.replace(config.train, epochs=epochs) if epochs else config.train
    return dataclasses.replace(config, model=model, train=train)


def write_corpus(path: Path, corpus: list[list[str]]) -> None:
    path.write_text("\n\n".join("\n".join(page) for page in corpus) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="+", default=["study", "pages_x4", "questions_x4", "captioned_x4"],
                        choices=["study", "pages_x4", "questions_x4", "captioned_x4", "drills_x4", "drills_only"])
    parser.add_argument("--probe-pages", type=int, default=600)
    parser.add_argument("--data", default="data/prepared", help="the prepared pool (its titles are trained on too)")
    parser.add_argument("--hidden-size", type=int, help="the LM's width for every variant (default: the stage's)")
    parser.add_argument("--layers", type=int, help="the LM's depth for every variant (default: the stage's)")
    parser.add_argument("--epochs", type=int, help="training epochs for every variant (default: the stage's)")
    args = parser.parse_args(argv)

    params = read_params(Path("."))
    recipe = params.get("recipe", {})
    cfg = validate_section("mini_youku", params["mini_youku"], recipe)
    config = validate_section("pretrain_text_lm", params["pretrain_text_lm"], recipe)
    config = resized(config, args.hidden_size, args.layers, args.epochs)
    n = cfg.corpus_videos
    study = pages(cfg, 0, n)
    assert [p for p, _ in study] == generator_corpus(cfg), "the study's pages are not the generator's"
    probe = [p for p, _ in pages(cfg, PROBE_OFFSET, PROBE_OFFSET + args.probe_pages)]
    corpora = {
        "study": lambda: [p for p, _ in study],
        "pages_x4": lambda: [p for p, _ in study + pages(cfg, n, 4 * n)],
        "questions_x4": lambda: [more_questions(p, c, cfg, i, 3) for i, (p, c) in enumerate(study)],
        "captioned_x4": lambda: [more_questions(p, c, cfg, i, 3, captioned=True) for i, (p, c) in enumerate(study)],
        "drills_x4": lambda: [p for p, _ in study] + [d for i in range(n) for d in drills(cfg, i, 4)],
        "drills_only": lambda: [d for i in range(n) for d in drills(cfg, i, 4)],
    }
    fresh_drills = [d for i in range(PROBE_OFFSET, PROBE_OFFSET + 150) for d in drills(cfg, i, 4)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            folder = Path(tmp) / name
            folder.mkdir()
            corpus = corpora[name]()
            write_corpus(folder / "corpus.txt", corpus)
            variant = dataclasses.replace(config, corpus_files=[str(folder / "corpus.txt")])
            t0 = time.perf_counter()
            text_lm.run(variant, TaskPaths(data=args.data, out=str(folder / "out"), work=str(folder / "work")))
            seconds = time.perf_counter() - t0
            model, tokenizer = load_text_lm(folder / "out")
            result = text_lm.protocol_probe(model.eval(), tokenizer, probe, variant.block_size)
            right = round(result["match_accuracy"] * result["probe_match_pages"] / 100)
            low, high = proportion_confint(right, result["probe_match_pages"], method="wilson")
            questions = sum(text_lm.MATCH_QUESTION in line for page in corpus for line in page)
            on_drills = text_lm.protocol_probe(model, tokenizer, fresh_drills, variant.block_size)["match_accuracy"]
            seen = text_lm.protocol_probe(model, tokenizer, corpus[:600], variant.block_size)["match_accuracy"]
            rows.append((name, len(corpus), questions, result["match_accuracy"], 100 * low, 100 * high,
                         result["class_top1"], on_drills, seen, seconds))
            print(f"{name}: done in {seconds:.0f} s", flush=True)
    m = config.model
    print(f"\n是/否 matching from text on {args.probe_pages} fresh probe pages (chance 50 %); "
          f"LM width {m.hidden_size}, {m.num_layers} layers, {m.num_heads} heads, {config.train.epochs} epochs")
    print(f"{'corpus':14s} {'pages':>6s} {'questions':>9s} {'match %':>8s} {'95 % CI':>14s} {'class top-1':>11s} "
          f"{'drills %':>8s} {'seen %':>7s} {'train s':>8s}")
    for name, n_pages, questions, acc, low, high, top1, on_drills, seen, seconds in rows:
        print(f"{name:14s} {n_pages:6d} {questions:9d} {acc:8.1f} {f'[{low:.1f}, {high:.1f}]':>14s} {top1:11.1f} "
              f"{on_drills:8.1f} {seen:7.1f} {seconds:8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
