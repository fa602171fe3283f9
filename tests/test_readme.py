"""The README's figures are the committed study's: read back from ``reports/``, so a stale README fails here.

Checked: the findings table (every row of ``reports/figures/findings/table_findings.csv``, in order, with its
paper figures, our estimate and interval, and its verdict), the count of findings that hold
(``reports/metrics/findings.json``), the headline numbers (Table 6 cells, captioning BLEU-4, retrieval R@1 and
median ranks, from the metrics files and the score sets params.yaml fixes) and the per-stage seconds of the
"What runs" table (the stage's run records, ``reports/runs/<stage>[@cell].json``, summed over its cells).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
METRICS = ROOT / "reports" / "metrics"
VARIANTS = ("vision", "language", "vision_language", "vision_language_pretrained")  # Table 6: V / L / V+L / V+L+PT


def metrics(name: str) -> dict:
    return json.loads((METRICS / f"{name}.json").read_text(encoding="utf-8"))


def paragraph(start: str) -> str:
    """The README paragraph that begins with `start`."""
    match = re.search(rf"^{re.escape(start)}.*?(?=\n\n)", README, re.M | re.S)
    assert match, f"README has no paragraph starting {start!r}"
    return " ".join(match.group(0).split())


def markdown_table(header: str) -> list[list[str]]:
    """The rows (cells stripped) of the README table whose header line starts with `header`."""
    lines = README[README.index(header):].splitlines()
    rows = []
    for line in lines[2:]:  # past the header and its separator
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def test_findings_table_is_the_committed_one():
    with open(ROOT / "reports" / "figures" / "findings" / "table_findings.csv", encoding="utf-8") as f:
        committed = [[r["claim"], r["paper"], r["ours (95% CI)"], f"**{r['verdict']}**"] for r in csv.DictReader(f)]
    assert markdown_table("| claim | paper | ours (95 % CI) | verdict |") == committed


def test_count_of_findings_that_hold():
    findings = metrics("findings")
    assert sum(findings["findings"].values()) == findings["holding"]
    assert f"**{findings['holding']} of {findings['checked']} findings hold**" in README


def test_headline_numbers_are_the_committed_metrics():
    headline = paragraph("Headline numbers")
    findings_params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["findings"]
    scores = findings_params["classification_scores"]
    for label, model in (("ALPRO", "alpro"), ("mPLUG-video", "mplug_video"), ("mPLUG-2", "mplug2")):
        cells = [metrics(f"finetune_classification@{model}-{v}")[scores[model]]["top1"]["estimate"] for v in VARIANTS]
        assert f"{label} " + " / ".join(f"{c:.1f}" for c in cells) in headline
    for label, model in (("mPLUG-video", "mplug_video"), ("mPLUG-2", "mplug2")):
        bleu = metrics(f"finetune_captioning@{model}")["BLEU-4"]
        assert f"{label} {bleu['estimate']:.1f} [{bleu['low']:.1f}, {bleu['high']:.1f}]" in headline
    for label, method in (("ALPRO", "alpro"), ("mPLUG-2", "mplug2"), ("mPLUG-video contrastive", "mplug_contrastive")):
        r1 = metrics(f"finetune_retrieval@{method}")["contrastive"]["t2v_R@1"]["estimate"]
        assert f"{r1:.1f} ({label})" in headline
    matching = metrics("finetune_retrieval@mplug_matching")
    generative, head = matching["generative"], matching["head"]
    assert f"{generative['t2v_R@1']['estimate']:.1f} % for mPLUG-video's 是/否 matching" in headline
    assert f"median rank {generative['t2v_MdR']['estimate']:.1f} of {matching['protocol']['videos']}" in headline
    assert (f"its matching head: {head['t2v_R@1']['estimate']:.1f}, median rank {head['t2v_MdR']['estimate']:.1f}"
            in headline)


@pytest.mark.parametrize("row", markdown_table("| stage (cells) | notebook |"), ids=lambda row: row[0])
def test_stage_seconds_are_the_run_records(row):
    match = re.fullmatch(r"`(\w+)`(?: \((\d+) cells\))?", row[0])
    assert match, f"stage cell {row[0]!r}"
    stage, cells = match.group(1), int(match.group(2) or 1)
    records = sorted((ROOT / "reports" / "runs").glob(f"{stage}.json")) + sorted(
        (ROOT / "reports" / "runs").glob(f"{stage}@*.json"))
    if stage == "report":  # renders the others' notebooks; it writes no run record of its own
        assert not records
        return
    assert len(records) == cells, f"{stage}: {len(records)} run records for {cells} cells"
    seconds = sum(json.loads(p.read_text(encoding="utf-8"))["seconds"] for p in records)
    assert int(row[-1]) == round(seconds), f"{stage}: README {row[-1]} s, run records {seconds:.1f} s"
