"""Panda-70M's caption findings over seeds: is "no single teacher gives the best caption" the recipe's or one seed's?

``panda_captions`` decides two findings on one run (recipe seed 0): no teacher is the oracle's best caption for
most clips (HOLDS in the study), and the fine-tuned selector beats the zero-shot one (FAILS). This script runs the
stage's task again exactly as the stage does (`PandaCaptionsParams()`, whose defaults are the params.yaml section,
through `launch`, which seeds the global generators as the stages do), with other recipe seeds. A seed decides
what the stage's seed decides (which clips' metadata are truthful, chit-chat or another class's; item randomness;
the bootstrap) and the seed of every training run in it (the two trained teachers and the selector: initial
weights of what is not loaded, data order). The teachers start from the study's captioning checkpoint and the
selector from its ALPRO pre-training; those are not rerun. For each seed it prints both findings as the stage logs
them (estimate, 95 % interval, verdict); seed 0 must equal the committed ``reports/metrics/panda_captions.json``
(checked).

    python benchmarks/panda_seeds.py --seeds 0 1 2     # about 1-2 minutes per seed on 2 CPU cores

Reads ``data/prepared`` and the checkpoints the teachers and the selector start from; writes only under ``--out``
(default ``.vlstudy/benchmarks/panda_seeds``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from vlstudy.tasks import panda_captions
from vlstudy.tasks.common import TaskPaths, launch

COMMITTED = Path("reports/metrics/panda_captions.json")


def seeded(config: panda_captions.PandaCaptionsParams, seed: int) -> panda_captions.PandaCaptionsParams:
    """`config` with the stage's seed and every training run's seed set to `seed`."""
    def train(part):
        return dataclasses.replace(part, train=dataclasses.replace(part.train, seed=seed))

    return dataclasses.replace(config, seed=seed, frame_teacher=train(config.frame_teacher),
                               video_text_teacher=train(config.video_text_teacher), selector=train(config.selector))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="recipe seeds (0: the study's)")
    parser.add_argument("--out", type=Path, default=Path(".vlstudy/benchmarks/panda_seeds"))
    args = parser.parse_args()
    verdicts: dict[str, list[tuple[float, bool]]] = {}
    for seed in args.seeds:
        folder = args.out / f"seed{seed}"
        start = time.time()
        result = launch(panda_captions.run, seeded(panda_captions.PandaCaptionsParams(), seed),
                        TaskPaths(data="data/prepared", out=str(folder), work=str(folder) + "_work"))
        findings = result.metrics["findings"]
        print(f"seed {seed} ({time.time() - start:.0f} s):", flush=True)
        for name, f in findings.items():
            verdicts.setdefault(name, []).append((f["ours"], f["holds"]))
            print(f"  {name}: {f['ours']:.2f} [{f['low']:.2f}, {f['high']:.2f}]  {'HOLDS' if f['holds'] else 'FAILS'}"
                  f"  ({f['note'].split(';')[0]})", flush=True)
        if seed == 0 and COMMITTED.is_file():
            # the task's fields; the committed entries also hold the paper's figures, which the notebook adds
            committed = json.loads(COMMITTED.read_text(encoding="utf-8"))["findings"]
            differ = [f"{n}.{k}: {committed[n].get(k)!r} here {v!r}" for n, f in findings.items() for k, v in f.items()
                      if committed.get(n, {}).get(k) != v]
            print(f"  seed 0 is {'DIFFERENT FROM' if differ else 'equal to'} the committed findings "
                  + "; ".join(differ), flush=True)
    print(f"\nseeds {' '.join(map(str, args.seeds))}")
    for name, rows in verdicts.items():
        print(f"  {name}: {' / '.join(f'{v:.2f}' for v, _ in rows)}; holds on {sum(h for _, h in rows)} of "
              f"{len(rows)} seeds")


if __name__ == "__main__":
    main()
