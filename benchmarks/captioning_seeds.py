"""Table 4's captioning claim over seeds: does mPLUG-video beat mPLUG-2 on BLEU-4 for other fine-tuning seeds?

The findings table decides "mPLUG-video beats mPLUG-2 on captioning BLEU-4" on one fine-tuning run per model
(recipe seed 0); its interval resamples the val videos of that run, not the training. This script fine-tunes both
captioning cells again, exactly as ``finetune_captioning@<model>`` does (`FinetuneCaptioningParams(model=...).cell()`
run through `launch`, which seeds as the stages do), with other recipe seeds, and prints each model's BLEU-4 and
the paired-bootstrap difference on the same val videos (`vlstudy.report.findings.captioning_result`, the findings'
own reading of the predictions). Seed 0 is the study's: its predictions are read from ``checkpoints/`` (not
trained again). Pre-training is not rerun (mPLUG-video starts from the study's ``pretrain_mplug_video``, mPLUG-2
from its ``pretrain_mplug2``): this measures the fine-tuning seed only.

    python benchmarks/captioning_seeds.py --seeds 0 1 2   # about 5 minutes per seed on 2 CPU cores

Reads ``data/prepared`` and the pre-trained checkpoints; writes only under ``--out`` (default
``.vlstudy/benchmarks/captioning_seeds``).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from vlstudy.metrics.bootstrap import paired_differences
from vlstudy.report.findings import captioning_result
from vlstudy.tasks import captioning
from vlstudy.tasks.common import TaskPaths, launch

MODELS = ("mplug_video", "mplug2")  # the claim: the first beats the second


def fine_tune(model: str, seed: int, out: Path) -> Path:
    """Fine-tune `model`'s captioning cell with recipe seed `seed`; the root its predictions lie under."""
    root = out / f"seed{seed}"
    folder = root / "checkpoints" / "finetune_captioning" / model  # the layout `captioning_result` reads
    config = captioning.FinetuneCaptioningParams(model=model).cell()
    config = dataclasses.replace(config, seed=seed, predict_test=False,  # val only: the claim's split
                                 train=dataclasses.replace(config.train, seed=seed))
    start = time.time()
    launch(captioning.run, config, TaskPaths(data="data/prepared", out=str(folder), work=str(folder) + "_work"))
    print(f"  {model} seed {seed}: fine-tuned in {time.time() - start:.0f} s", flush=True)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="recipe seeds (0: the study's)")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path(".vlstudy/benchmarks/captioning_seeds"))
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        print(f"seed {seed}:", flush=True)
        results = {m: captioning_result(Path(".") if seed == 0 else fine_tune(m, seed, args.out), m) for m in MODELS}
        row = paired_differences(results[MODELS[0]], results[MODELS[1]], rng=np.random.default_rng(seed),
                                 n_boot=args.n_boot).loc["BLEU-4"]
        rows.append((row["difference"], row["low"] > 0))
        print("  " + ", ".join(f"{m} BLEU-4 {results[m].summary['BLEU-4']:.2f}" for m in MODELS)
              + f"; difference {row['difference']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]  "
              f"{'HOLDS' if row['low'] > 0 else 'FAILS'}", flush=True)
    print(f"\n{MODELS[0]} > {MODELS[1]} on BLEU-4, seeds {' '.join(map(str, args.seeds))}: differences "
          f"{' / '.join(f'{d:+.2f}' for d, _ in rows)}; holds on {sum(h for _, h in rows)} of {len(rows)} seeds")


if __name__ == "__main__":
    main()
