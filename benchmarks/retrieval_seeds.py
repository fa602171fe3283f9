"""Table 5's retrieval claims over seeds: do they fail for other fine-tuning seeds too?

The findings table decides "mPLUG-2 beats ALPRO" and "ALPRO beats mPLUG-video" on text-to-video R@1 from one
fine-tuning run per retrieval cell (recipe seed 0); its interval resamples the val texts of that run, not the
training. This script fine-tunes the three cells the claims read again, exactly as ``finetune_retrieval@<method>``
does (`FinetuneRetrievalParams(method=...).cell()` run through `launch`, which seeds as the stages do), with other
recipe seeds, and prints each model's R@1 from the score set the findings use (``findings.retrieval_scores`` of
params.yaml, read with `vlstudy.report.findings.retrieval_result`) and the paired-bootstrap differences on the same
val texts. Seed 0 is the study's: its score matrices are read from ``checkpoints/`` (not trained again).
Pre-training is not rerun: this measures the fine-tuning seed only.

    python benchmarks/retrieval_seeds.py --seeds 0 1 2   # about 10 minutes per seed on 2 CPU cores

Reads ``data/prepared`` and the pre-trained checkpoints; writes only under ``--out`` (default
``.vlstudy/benchmarks/retrieval_seeds``).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from vlstudy.config import RECIPE_SECTION, read_params
from vlstudy.metrics.bootstrap import paired_differences
from vlstudy.pipeline.runner import validate_section
from vlstudy.report.findings import retrieval_result
from vlstudy.tasks import retrieval
from vlstudy.tasks.common import TaskPaths, launch

CLAIMS = (("mplug2", "alpro"), ("alpro", "mplug_video"))  # Table 5: the first beats the second on t2v R@1
METRIC = "t2v_R@1"


def fine_tune(method: str, seed: int, out: Path) -> None:
    """Fine-tune retrieval cell `method` with recipe seed `seed` into the layout `retrieval_result` reads."""
    folder = out / f"seed{seed}" / "checkpoints" / "finetune_retrieval" / method
    config = retrieval.FinetuneRetrievalParams(method=method).cell()
    config = dataclasses.replace(config, seed=seed, train=dataclasses.replace(config.train, seed=seed))
    start = time.time()
    launch(retrieval.run, config, TaskPaths(data="data/prepared", out=str(folder), work=str(folder) + "_work"))
    print(f"  {method} seed {seed}: fine-tuned in {time.time() - start:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="recipe seeds (0: the study's)")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path(".vlstudy/benchmarks/retrieval_seeds"))
    args = parser.parse_args()
    params = read_params(Path("."))
    scores = validate_section("findings", params["findings"], params[RECIPE_SECTION]).retrieval_scores
    verdicts = {claim: [] for claim in CLAIMS}
    for seed in args.seeds:
        print(f"seed {seed}:", flush=True)
        root = Path(".") if seed == 0 else args.out / f"seed{seed}"
        if seed != 0:
            for method in sorted({s.split("/")[0] for s in scores.values()}):
                fine_tune(method, seed, args.out)
        results = {model: retrieval_result(root, s) for model, s in scores.items()}
        print("  " + ", ".join(f"{m} ({scores[m]}) {METRIC} {results[m].summary[METRIC]:.2f}" for m in results),
              flush=True)
        for a, b in CLAIMS:
            row = paired_differences(results[a], results[b], rng=np.random.default_rng(seed),
                                     n_boot=args.n_boot).loc[METRIC]
            verdicts[(a, b)].append((row["difference"], row["low"] > 0))
            print(f"  {a} - {b}: {row['difference']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]  "
                  f"{'HOLDS' if row['low'] > 0 else 'FAILS'}", flush=True)
    for (a, b), rows in verdicts.items():
        print(f"\n{a} > {b} on {METRIC}, seeds {' '.join(map(str, args.seeds))}: differences "
              f"{' / '.join(f'{d:+.2f}' for d, _ in rows)}; holds on {sum(h for _, h in rows)} of {len(rows)} seeds")


if __name__ == "__main__":
    main()
