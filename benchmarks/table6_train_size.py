"""Table 6 with more fine-tuning videos: do its verdicts fail for want of classification training data?

mini-Youku's classification train split holds 10 videos a class (450), against 30 a class in val; a title carries
the class keyword in a fifth of the videos (``classification_cues.p_keyword``), so a cell sees the keyword of a
class about twice in training. This script adds training videos, drawn exactly as the generator draws the split's
(`vlstudy.data.mini_youku.generate`: the same cue probabilities, renderer, title and layer writers, a seed stream
of their own, titles kept unique against the whole dataset), until the split holds ``--per-class`` videos a class,
and fine-tunes the chosen cells on it as ``finetune_classification@<model>-<variant>`` does
(`table6_seeds.run_cell`, recipe seed 0 unless ``--seeds`` says otherwise; pre-trained cells start from the
study's checkpoints: pre-training is not rerun). Val is the study's val split, unchanged, so each cell is compared
with the committed one on the same videos. It prints every cell's top-1 beside the committed cell's, and each step
of the paper's ordering (V+L+PT > V+L > V > L) with its paired-bootstrap difference at both sizes, decided by the
``modality_summary`` stage's own code (`vlstudy.report.ablation.ordering_check`: a step HOLDS when its 95 % interval
excludes 0 the paper's way).

    python benchmarks/table6_train_size.py --per-class 30                  # the three models, four cells each
    python benchmarks/table6_train_size.py --per-class 30 --models alpro --seeds 1 2 \\
        --variants vision_language vision_language_pretrained    # ALPRO's pre-training gain, two more seeds

Reads ``data/prepared``, ``data/mini_youku`` and the study's checkpoints (run the study first). Writes only under
``--out`` (default ``.vlstudy/benchmarks/table6_train_size``): the added videos, a prepared folder whose
classification train split is the study's plus them (every other file linked), and the fine-tuned cells. At 30 a
class a cell trains three times as long as the study's: about 35 minutes for the twelve cells on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vlstudy.config import to_dict
from vlstudy.data.classes import NUM_CLASSES
from vlstudy.data.mini_youku import text as T
from vlstudy.data.mini_youku.generate import (
    _TASK_CODE,
    Item,
    MiniYoukuConfig,
    _attach_layers,
    _draw_cues,
    _render_one,
    _spec,
    _unique_title,
    _video_id,
    plan,
)
from vlstudy.metrics.bootstrap import paired_differences
from vlstudy.report.ablation import ordering_check
from vlstudy.tasks import classification

sys.path.insert(0, str(Path(__file__).parent))
from table6_seeds import ORDER, SCORE_SETS, SHORT, run_cell  # noqa: E402

EXTRA_STREAM = 10**7  # the added videos' per-item seeds: [seed, classification, EXTRA_STREAM + k], unused by the study
LAYER_COLUMNS = ("factual", "abstract", "intent", "tags_6w", "description", "subtitles")


def study_config() -> MiniYoukuConfig:
    """The study's mini-Youku configuration (dataclass defaults equal params.yaml); checked against the meta.json
    the study's generator wrote, so the added videos are drawn from the same world."""
    cfg = MiniYoukuConfig()
    written = json.loads(Path("data/mini_youku/meta.json").read_text(encoding="utf-8"))["config"]
    if json.loads(json.dumps(to_dict(cfg))) != written:
        raise SystemExit("data/mini_youku/meta.json was generated with other params than params.yaml's: rerun the "
                         "study (dvc repro mini_youku) first")
    return cfg


def extra_items(cfg: MiniYoukuConfig, per_class: int) -> list[Item]:
    """The videos that bring the train split to `per_class` a class, labels in the generator's order."""
    extra = per_class - cfg.classification_per_class.train
    if extra < 1:
        raise SystemExit(f"--per-class must exceed the study's {cfg.classification_per_class.train}")
    titles = {it.title for it in plan(cfg) if it.title}
    items, k = [], 0
    for label in range(NUM_CLASSES):
        for _ in range(extra):
            rng = np.random.default_rng([cfg.seed, _TASK_CODE["classification"], EXTRA_STREAM + k])
            cues = _draw_cues(label, cfg.classification_cues, cfg.night, rng)
            vid = _video_id(cfg.seed, "classification_extra", k)
            item = Item(vid, "classification", "train", vid, cues,
                        _spec(cues, rng.uniform(*cfg.benchmark_duration), cfg, rng))
            item.title = _unique_title(lambda r, c=cues: T.benchmark_title(c, r), titles, rng)
            items.append(_attach_layers(item, rng))
            k += 1
    return items


def render(items: list[Item], videos: Path, workers: int) -> None:
    """Render every item not yet in `videos` (a rerun reuses them)."""
    videos.mkdir(parents=True, exist_ok=True)
    jobs = [(it.spec, str(videos / it.video_id), "", 0) for it in items if not (videos / it.video_id).is_file()]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        for _ in tqdm(pool.map(_render_one, jobs, chunksize=16), total=len(jobs), desc="added train videos"):
            pass


def prepared_with(items: list[Item], videos: Path, folder: Path) -> str:
    """`folder`: the study's prepared splits, the classification train split extended by `items`."""
    folder.mkdir(parents=True, exist_ok=True)
    study = Path("data/prepared")
    for f in study.iterdir():
        link = folder / f.name
        if f.name != "classification_train.parquet" and not link.exists():
            link.symlink_to(f.resolve())
    train = pd.read_parquet(study / "classification_train.parquet")
    added = pd.DataFrame([{
        "video_id": it.video_id, "video_path": str(videos / it.video_id), "source_id": it.source_id,
        "title": it.title, "label": it.cues.label, "captions": np.array([], dtype=object), "duration": np.nan,
        **{c: it.extras[c] for c in LAYER_COLUMNS}} for it in items])
    both = pd.concat([train, added.astype({"label": train["label"].dtype})], ignore_index=True)
    both.to_parquet(folder / "classification_train.parquet")
    return str(folder)


def committed_predictions(model: str, variant: str):
    """The study's cell (train split of 10 a class): its val predictions of the model's score set."""
    return classification.load_predictions(Path(f"checkpoints/finetune_classification/{model}-{variant}"))[
        SCORE_SETS[model]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=30, help="train videos a class (the study's: 10)")
    parser.add_argument("--models", nargs="+", choices=list(SCORE_SETS), default=list(SCORE_SETS))
    parser.add_argument("--variants", nargs="+", choices=ORDER, default=ORDER)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="recipe seeds of the fine-tuning (0: the study's; the study's cells exist for 0 only)")
    parser.add_argument("--workers", type=int, default=2, help="rendering processes")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path(".vlstudy/benchmarks/table6_train_size"))
    args = parser.parse_args()
    cfg = study_config()
    items = extra_items(cfg, args.per_class)
    videos = args.out / "videos"
    render(items, videos, args.workers)
    data = prepared_with(items, videos, args.out / f"prepared_{args.per_class}")
    n_train = len(pd.read_parquet(Path(data) / "classification_train.parquet"))
    print(f"classification train: {n_train} videos ({args.per_class} a class; the study's: "
          f"{cfg.classification_per_class.train}); val unchanged", flush=True)
    variants = [v for v in ORDER if v in args.variants]
    lines = []

    def diff(a, b) -> pd.Series:
        return paired_differences(a, b, rng=np.random.default_rng(0), n_boot=args.n_boot).loc["top1"]

    def shown(step: pd.Series) -> str:
        return (f"{step['difference']:+.2f} [{step['low']:+.2f}, {step['high']:+.2f}] "
                f"{'HOLDS' if step['holds'] else 'FAILS'}")

    for seed in args.seeds:
        for model in args.models:
            print(f"{model}, {args.per_class} train videos a class, seed {seed}", flush=True)
            large = {v: run_cell(model, v, seed, args.out / f"cells_{args.per_class}", data=data)[0] for v in variants}
            steps = ordering_check(large, rng=np.random.default_rng(0), n_boot=args.n_boot)
            if seed != 0:  # the study's cells are seed 0's only
                lines += [f"  {model:11s} {b['comparison']}:  seed {seed}, {args.per_class} a class {shown(b)}"
                          for _, b in steps.iterrows()]
                continue
            small = {v: committed_predictions(model, v) for v in variants}
            for variant in variants:
                d = diff(large[variant], small[variant])
                lines.append(f"  {model:11s} {SHORT[variant]:7s} top-1 {d['b']:.2f} -> {d['a']:.2f}  "
                             f"({d['difference']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}])")
            before = ordering_check(small, rng=np.random.default_rng(0), n_boot=args.n_boot)
            for (_, a), (_, b) in zip(before.iterrows(), steps.iterrows()):
                lines.append(f"  {model:11s} {a['comparison']}:  {cfg.classification_per_class.train} a class "
                             f"{shown(a)};  {args.per_class} a class {shown(b)}")
    print(f"\nTable 6 at {cfg.classification_per_class.train} and {args.per_class} train videos a class (val top-1, "
          f"the same val videos; paired bootstrap, 95 %)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
