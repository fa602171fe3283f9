"""Two finished studies side by side: each finding's estimate and verdict, the metrics files that differ, and the
seconds in the notebooks, e.g. the default study (float32) against the bf16 profile's.

    python benchmarks/compare_studies.py . runs/bf16
    python benchmarks/compare_studies.py . runs/bf16 --markdown     # the findings as a README table

Reads each workspace's ``reports/figures/findings/table_findings.csv`` (the findings stage's table),
``reports/metrics/*.json`` and ``reports/runs/*.json``; writes nothing. The seconds are the notebooks' own
(kernel start-up is not in them: about 10 s per stage run here, `benchmarks/stage_overhead.py`).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

FINDINGS = Path("reports/figures/findings/table_findings.csv")


def findings(workspace: Path) -> dict[str, dict[str, str]]:
    """The findings table of `workspace`: finding id -> its row (claim, ours (95% CI), verdict, ...)."""
    with open(workspace / FINDINGS, encoding="utf-8") as f:
        return {row["finding"]: row for row in csv.DictReader(f)}


def differing_metrics(a: Path, b: Path) -> tuple[list[str], list[str]]:
    """(metrics files whose JSON differs, metrics files present in one workspace only), by stage id."""
    names_a = {p.stem for p in (a / "reports" / "metrics").glob("*.json")}
    names_b = {p.stem for p in (b / "reports" / "metrics").glob("*.json")}

    def load(root: Path, name: str) -> dict:
        return json.loads((root / "reports" / "metrics" / f"{name}.json").read_text(encoding="utf-8"))

    differ = sorted(n for n in names_a & names_b if load(a, n) != load(b, n))
    return differ, sorted(names_a ^ names_b)


def notebook_seconds(workspace: Path) -> tuple[float, int]:
    """The seconds inside the notebooks summed over the run records, and the number of stage runs."""
    records = list((workspace / "reports" / "runs").glob("*.json"))
    return sum(json.loads(p.read_text(encoding="utf-8"))["seconds"] for p in records), len(records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="a study's workspace (the default study: .)")
    parser.add_argument("b", type=Path, help="another's (a profile's: runs/<profile>)")
    parser.add_argument("--markdown", action="store_true", help="print the findings as a markdown table")
    args = parser.parse_args(argv)
    fa, fb = findings(args.a), findings(args.b)
    if args.markdown:
        print(f"| claim | {args.a} | {args.b} |\n|---|---|---|")
    for key in [k for k in fa if k in fb] + [k for k in fb if k not in fa]:
        ra, rb = fa.get(key), fb.get(key)
        cells = [f"{r['ours (95% CI)']} {r['verdict']}" if r else "absent" for r in (ra, rb)]
        claim = (ra or rb)["claim"]
        changed = " (changed)" if ra and rb and ra["verdict"] != rb["verdict"] else ""
        if args.markdown:
            print(f"| {claim} | " + " | ".join(c.replace("HOLDS", "**HOLDS**") for c in cells) + " |")
        else:
            print(f"{claim}\n    {args.a}: {cells[0]}\n    {args.b}: {cells[1]}{changed}")
    holding = [sum(r["verdict"] == "HOLDS" for r in f.values()) for f in (fa, fb)]
    print(f"\nfindings that hold: {args.a} {holding[0]} of {len(fa)}, {args.b} {holding[1]} of {len(fb)}")
    differ, only = differing_metrics(args.a, args.b)
    print(f"metrics files that differ: {len(differ)}" + (f" ({', '.join(differ)})" if differ else "")
          + (f"; in one workspace only: {', '.join(only)}" if only else ""))
    for root in (args.a, args.b):
        seconds, runs = notebook_seconds(root)
        print(f"{root}: {runs} stage runs, {seconds:.0f} s in the notebooks ({seconds / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
