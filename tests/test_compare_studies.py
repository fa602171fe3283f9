"""benchmarks/compare_studies.py: the findings of two studies side by side, the metrics files that differ, the
notebook seconds (the README's bf16-profile table comes from it)."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "compare_studies.py"
_spec = importlib.util.spec_from_file_location("compare_studies", SCRIPT)
bench = sys.modules["compare_studies"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

FIELDS = ["finding", "claim", "paper", "ours (95% CI)", "verdict", "note"]


def _workspace(root: Path, rows: list[tuple[str, str, str]], metrics: dict[str, dict], seconds: list[float]) -> Path:
    table = root / bench.FINDINGS
    table.parent.mkdir(parents=True)
    with open(table, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        for key, ours, verdict in rows:
            writer.writerow({"finding": key, "claim": f"claim {key}", "paper": "p", "ours (95% CI)": ours,
                             "verdict": verdict, "note": ""})
    for folder in ("metrics", "runs"):
        (root / "reports" / folder).mkdir(parents=True)
    for name, values in metrics.items():
        (root / "reports" / "metrics" / f"{name}.json").write_text(json.dumps(values))
    for i, s in enumerate(seconds):
        (root / "reports" / "runs" / f"stage{i}.json").write_text(json.dumps({"seconds": s}))
    return root


def test_compare_two_studies(tmp_path, capsys):
    a = _workspace(tmp_path / "a", [("x", "1.0 [0.5, 1.5]", "HOLDS"), ("y", "0.1 [-1, 1]", "FAILS")],
                   {"s1": {"v": 1}, "s2": {"v": 2}, "only_a": {}}, [10.0, 20.5])
    b = _workspace(tmp_path / "b", [("x", "0.2 [-0.5, 0.9]", "FAILS"), ("y", "0.1 [-1, 1]", "FAILS"),
                                    ("z", "3 [2, 4]", "HOLDS")], {"s1": {"v": 1}, "s2": {"v": 2.5}}, [5.0])
    assert bench.differing_metrics(a, b) == (["s2"], ["only_a"])
    assert bench.notebook_seconds(a) == (30.5, 2)
    assert bench.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert f"claim x\n    {a}: 1.0 [0.5, 1.5] HOLDS\n    {b}: 0.2 [-0.5, 0.9] FAILS (changed)\n" in out
    assert f"claim y\n    {a}: 0.1 [-1, 1] FAILS\n    {b}: 0.1 [-1, 1] FAILS\n" in out
    assert f"claim z\n    {a}: absent\n    {b}: 3 [2, 4] HOLDS\n" in out
    assert f"findings that hold: {a} 1 of 2, {b} 1 of 3" in out
    assert "metrics files that differ: 1 (s2); in one workspace only: only_a" in out
    assert f"{a}: 2 stage runs, 30 s in the notebooks (0.5 min)" in out
    bench.main([str(a), str(b), "--markdown"])
    assert "| claim x | 1.0 [0.5, 1.5] **HOLDS** | 0.2 [-0.5, 0.9] FAILS |" in capsys.readouterr().out
