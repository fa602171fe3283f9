"""VideoMind's "intent is hardest" claim over seeds: does it fail for other fine-tuning seeds too?

The findings table decides "text→video retrieval is hardest from the intent layer (R@1 factual > abstract >
intent)" per model from one run of ``videomind_retrieval`` (recipe seed 0), which scores VideoMind's three layers
with the dual encoders that ``finetune_retrieval`` fine-tuned (``mplug_contrastive``, ``alpro``) and with a
DeME-style model trained from ``mplug_contrastive``; its interval resamples the test videos of that run, not the
training. This script repeats it with other recipe seeds: the two retrieval cells are fine-tuned again exactly as
``benchmarks/retrieval_seeds.py`` does (its folders are reused when they exist), then ``videomind_retrieval``'s own
task runs on them (`VideoMindRetrievalParams` from params.yaml, models and DeME's starting point pointed at that
seed's folders, seed replaced), and each model's finding is decided by the stage's own code
(`vlstudy.report.videomind.layer_steps` and `intent_hardest_finding`). Seed 0 is the study's: read from
``checkpoints/videomind_retrieval`` (not run again). Pre-training is not rerun.

    python benchmarks/videomind_seeds.py --seeds 0 1 2   # about 3 minutes per seed on 2 CPU cores (more when the
                                                         # retrieval cells of that seed are not there yet)

Reads ``data/prepared`` and the checkpoints; writes only under ``--out`` (default
``.vlstudy/benchmarks/retrieval_seeds``, beside the retrieval cells of each seed).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from vlstudy.config import RECIPE_SECTION, read_params
from vlstudy.pipeline.runner import validate_section
from vlstudy.report.videomind import intent_hardest_finding, layer_steps
from vlstudy.tasks import videomind
from vlstudy.tasks.common import TaskPaths, launch

sys.path.insert(0, str(Path(__file__).parent))
from retrieval_seeds import fine_tune  # noqa: E402  (the retrieval cells, fine-tuned as the stage does)

STUDY = Path("checkpoints/videomind_retrieval")


def seed_folder(out: Path, seed: int) -> Path:
    """Where `seed`'s videomind_retrieval outputs go (beside its retrieval cells)."""
    return out / f"seed{seed}" / "checkpoints" / "videomind_retrieval"


def run_seed(params: videomind.VideoMindRetrievalParams, seed: int, out: Path) -> Path:
    """Fine-tune the retrieval cells the stage reads (if missing) and run the stage's task with `seed`."""
    cells = out / f"seed{seed}" / "checkpoints" / "finetune_retrieval"
    for method in params.models:
        if not (cells / method / "model").is_dir():
            fine_tune(method, seed, out)
    deme = dataclasses.replace(params.deme, init=str(cells / "mplug_contrastive" / "model"),
                               train=dataclasses.replace(params.deme.train, seed=seed))
    config = dataclasses.replace(params, models={m: str(cells / m / "model") for m in params.models}, deme=deme,
                                 seed=seed)
    folder = seed_folder(out, seed)
    launch(videomind.run, config, TaskPaths(data="data/prepared", out=str(folder), work=str(folder) + "_work"))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="recipe seeds (0: the study's)")
    parser.add_argument("--out", type=Path, default=Path(".vlstudy/benchmarks/retrieval_seeds"))
    args = parser.parse_args()
    params = read_params(Path("."))
    config = validate_section("videomind_retrieval", params["videomind_retrieval"], params[RECIPE_SECTION])
    models = [*config.models, videomind.DEME]
    held = {m: [] for m in models}
    for seed in args.seeds:
        folder = STUDY if seed == 0 else run_seed(config, seed, args.out)
        results = videomind.load_results(folder, models)
        rng = np.random.default_rng(seed)  # as the stage's notebook draws it
        print(f"seed {seed}:", flush=True)
        for name, result in results.items():
            finding = intent_hardest_finding(name, layer_steps(result, rng=rng, n_boot=config.n_boot))
            held[name].append(finding["holds"])
            print(f"  {name}: {finding['note']}", flush=True)
    for name, verdicts in held.items():
        print(f"{name}: intent hardest holds on {sum(verdicts)} of {len(verdicts)} seeds")


if __name__ == "__main__":
    main()
