"""Two classification cells compared on the same val videos: each one's top-1 and the paired-bootstrap difference
a - b (95 %), as the findings table decides a Table 6 step, for cells that are not both in one study's findings
(e.g. a profile workspace's cells, or a profile's cell against the default study's).

    python benchmarks/paired_cells.py \\
        runs/pool_x3/checkpoints/finetune_classification/alpro-vision_language_pretrained \\
        runs/pool_x3/checkpoints/finetune_classification/alpro-vision_language

Each argument is a cell's output folder (its ``predictions_val.parquet``); the score set is the findings stage's
for the model named by the folder (``<model>-<variant>``). The interval is this script's bootstrap draws, so it
differs slightly from the findings table's for the same two cells; the estimate is the same. Writes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vlstudy.metrics.bootstrap import paired_differences
from vlstudy.pipeline.runner import load_section
from vlstudy.tasks import classification


def score_set(folder: Path) -> str:
    """The findings stage's score set for the cell in `folder` (named ``<model>-<variant>``)."""
    sets = load_section(Path("."), "findings")["classification_scores"]
    model = folder.name.split("-")[0]
    if model not in sets:
        raise SystemExit(f"{folder}: not a classification cell folder (<model>-<variant>, model one of {list(sets)})")
    return sets[model]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    args = parser.parse_args()
    a, b = (classification.load_predictions(f)[score_set(f)] for f in (args.a, args.b))
    row = paired_differences(a, b, rng=np.random.default_rng(args.seed), n_boot=args.n_boot).loc["top1"]
    excludes = row["low"] > 0 or row["high"] < 0
    print(f"a {args.a}: top-1 {row['a']:.2f}\nb {args.b}: top-1 {row['b']:.2f}\n"
          f"a - b: {row['difference']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}] (paired bootstrap over "
          f"{len(a.per_item)} val videos, 95 %): the interval {'excludes' if excludes else 'includes'} 0")


if __name__ == "__main__":
    main()
