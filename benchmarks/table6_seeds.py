"""Table 6 over seeds: is a modality-ablation verdict a property of the recipe or of the study's one seed?

The findings table decides Table 6's ordering (V+L+PT > V+L > V > L) on one run per cell, trained with the recipe
seed 0, and its intervals resample the val videos of that run, not the training. This script fine-tunes the cells
of one model again, exactly as ``finetune_classification@<model>-<variant>`` does
(`FinetuneClassificationParams(...).cell()` run through `launch`, which seeds as the stages do), with the recipe
seeds it is given. A seed decides the initial weights of what is not loaded, the data order, the frame sampling
and the bootstrap. For each seed it prints every cell's top-1 (95 % bootstrap interval over val videos) and the
paired-bootstrap difference of each step of the ordering that the chosen variants contain, on the same videos;
then, per step, on how many seeds the difference points the paper's way with an interval that excludes 0.
Seed 0 must reproduce the committed cells (`reports/metrics/finetune_classification@<cell>.json`): the script
checks it, so the runs here are the stage's. Pre-training is not rerun: a cell from pre-trained weights starts from
the study's checkpoint (seed 0), so this measures the fine-tuning seed only. The variants
``vision_language vision_language_pretrained`` give a model's pre-training gain over seeds; ``--table4`` fine-tunes
the V+L+PT cell of all three models per seed and prints Table 4's top-1 claims instead (mPLUG-video minus ALPRO,
minus mPLUG-2, paired over the same val videos, each model on its findings score set).

    python benchmarks/table6_seeds.py --model mplug_video --variants vision language --seeds 0 1 2
    python benchmarks/table6_seeds.py --model mplug2 --variants vision_language vision_language_pretrained  # PT gain
    python benchmarks/table6_seeds.py --table4 --seeds 0 1 2   # Table 4 top-1: mPLUG-video vs ALPRO, vs mPLUG-2

Reads ``data/prepared`` and the checkpoints the cells start from (run ``dvc repro finetune_classification``
first); writes only under ``--out`` (default ``.vlstudy/benchmarks/table6_seeds``). About a minute per cell and
seed on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from vlstudy.metrics.bootstrap import paired_differences
from vlstudy.pipeline.runner import load_section
from vlstudy.tasks import classification
from vlstudy.tasks.common import TaskPaths, launch

ORDER = ["vision_language_pretrained", "vision_language", "vision", "language"]  # Table 6, best first
TABLE4_OTHERS = ("alpro", "mplug2")  # Table 4: mPLUG-video's top-1 above each
SHORT = {"vision_language_pretrained": "V+L+PT", "vision_language": "V+L", "vision": "V", "language": "L"}
# the score set each model is judged on, as the findings stage reads it
SCORE_SETS = load_section(Path("."), "findings")["classification_scores"]


def run_cell(model: str, variant: str, seed: int, out: Path, data: str = "data/prepared"):
    """Fine-tune the cell (model, variant) with recipe seed `seed` on the prepared splits in `data`; its val
    predictions of the model's score set and their top-1. Seed 0 on the study's `data` must equal the committed
    cell (checked)."""
    config = classification.FinetuneClassificationParams(model=model, variant=variant).cell()
    config = dataclasses.replace(config, seed=seed, predict_test=False,
                                 train=dataclasses.replace(config.train, seed=seed))
    folder = out / f"{model}-{variant}-seed{seed}"
    start = time.time()
    result = launch(classification.run, config, TaskPaths(data=data, out=str(folder), work=str(folder) + "_work"))
    score_set = SCORE_SETS[model]
    top1 = result.metrics[score_set]["top1"]
    print(f"  {SHORT[variant]:7s} seed {seed}: top-1 {top1['estimate']:.2f} [{top1['low']:.2f}, {top1['high']:.2f}]"
          f"  ({time.time() - start:.0f} s)", flush=True)
    if seed == 0 and data == "data/prepared":
        committed = Path(f"reports/metrics/finetune_classification@{model}-{variant}.json")
        if committed.is_file():
            expected = json.loads(committed.read_text())[score_set]["top1"]["estimate"]
            same = "equal to" if expected == top1["estimate"] else "DIFFERENT FROM"
            print(f"          seed 0 is {same} the committed cell ({expected:.2f})", flush=True)
    return classification.load_predictions(folder)[score_set], top1["estimate"]


def table4(seeds: list[int], n_boot: int, out: Path) -> None:
    """Table 4's top-1 claims over seeds: the V+L+PT cell of every model, mPLUG-video minus each other model,
    paired over the same val videos (the findings' comparison, with each model's score set)."""
    diffs = {other: [] for other in TABLE4_OTHERS}
    for seed in seeds:
        print(f"seed {seed}: Table 4, the vision_language_pretrained cell of each model", flush=True)
        results = {m: run_cell(m, "vision_language_pretrained", seed, out)[0] for m in ("mplug_video", *TABLE4_OTHERS)}
        for other in TABLE4_OTHERS:
            row = paired_differences(results["mplug_video"], results[other], rng=np.random.default_rng(seed),
                                     n_boot=n_boot).loc["top1"]
            diffs[other].append((row["difference"], row["low"] > 0))
            print(f"  mplug_video - {other}: {row['difference']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]  "
                  f"{'HOLDS' if row['low'] > 0 else 'FAILS'}", flush=True)
    print(f"\nTable 4 top-1, seeds {' '.join(map(str, seeds))}")
    for other, rows in diffs.items():
        print(f"  mplug_video > {other}: differences {' / '.join(f'{d:+.2f}' for d, _ in rows)}; "
              f"holds on {sum(h for _, h in rows)} of {len(rows)} seeds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=list(SCORE_SETS), default="mplug_video")
    parser.add_argument("--variants", nargs="+", choices=ORDER, default=["vision", "language"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="recipe seeds (0: the study's)")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--table4", action="store_true",
                        help="Table 4's top-1 claims instead: the V+L+PT cell of the three models per seed")
    parser.add_argument("--out", type=Path, default=Path(".vlstudy/benchmarks/table6_seeds"))
    args = parser.parse_args()
    if args.table4:
        return table4(args.seeds, args.n_boot, args.out)
    variants = [v for v in ORDER if v in args.variants]
    steps = list(zip(variants, variants[1:]))  # (better, worse) by the paper's ordering
    top1, verdicts = {v: [] for v in variants}, {step: [] for step in steps}
    for seed in args.seeds:
        print(f"seed {seed}: {args.model}", flush=True)
        results = {}
        for variant in variants:
            results[variant], estimate = run_cell(args.model, variant, seed, args.out)
            top1[variant].append(estimate)
        for better, worse in steps:
            row = paired_differences(results[better], results[worse], rng=np.random.default_rng(seed),
                                     n_boot=args.n_boot).loc["top1"]
            holds = row["low"] > 0
            verdicts[(better, worse)].append((row["difference"], holds))
            print(f"  {SHORT[better]} - {SHORT[worse]}: {row['difference']:+.2f} "
                  f"[{row['low']:+.2f}, {row['high']:+.2f}]  {'HOLDS' if holds else 'FAILS'}", flush=True)
    print(f"\n{args.model}, seeds {' '.join(map(str, args.seeds))}")
    for v in variants:
        spread = max(top1[v]) - min(top1[v])
        print(f"  {SHORT[v]:7s} top-1: {' / '.join(f'{x:.2f}' for x in top1[v])}  (range {spread:.2f})")
    for (better, worse), rows in verdicts.items():
        print(f"  {SHORT[better]} > {SHORT[worse]}: differences {' / '.join(f'{d:+.2f}' for d, _ in rows)}; "
              f"holds on {sum(h for _, h in rows)} of {len(rows)} seeds")


if __name__ == "__main__":
    main()
