"""The study's front page: ``reports/index.html``, one self-contained file that opens offline.

It gathers, in pipeline order, every stage's metrics file (``reports/metrics/S.json``), its result tables
(``reports/figures/S/table_*.csv``) and figures (``reports/figures/S/*.png``, inlined as base64), with a link to
the stage's rendered notebook. Where a stage reproduces a paper table, the stage writes the comparison table
itself (ours beside the paper's, from :mod:`vlstudy.paper`); this page labels every such table as a comparison
across different data and scale.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import nbformat
import pandas as pd
import yaml

__all__ = ["collect_stages", "build_index", "flatten_metrics"]

CSS = """
body{font-family:"Noto Sans CJK SC","Noto Sans SC","PingFang SC","Microsoft YaHei",sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{margin-top:2.2em;border-bottom:1px solid #bbb}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.5em 1em;margin:1em 0}
figure{margin:1em 0}figcaption{font-size:.9em;color:#555}img{max-width:100%}
nav a{margin-right:1em}.small{font-size:.85em;color:#666}
"""


def flatten_metrics(data: dict, prefix: str = "") -> dict[str, object]:
    """Scalar leaves of a metrics dict as ``{"a.b.c": value}``; keys starting with ``_`` are left out."""
    out: dict[str, object] = {}
    for key, value in data.items():
        if str(key).startswith("_"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_metrics(value, name + "."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[name] = value
    return out


def _stage_order(root: Path) -> list[str]:
    with open(root / "dvc.yaml", encoding="utf-8") as f:
        return list((yaml.safe_load(f) or {}).get("stages", {}))


def _notebook_intro(root: Path, stage: str) -> tuple[str, str]:
    """(title, first paragraph) of the stage notebook's first markdown cell."""
    hits = sorted((root / "notebooks").glob(f"[0-9][0-9]_{stage}.ipynb"))
    if not hits:
        return stage, ""
    nb = nbformat.read(hits[0], as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            lines = [line.strip() for line in cell.source.strip().splitlines()]
            title = lines[0].lstrip("# ").strip() if lines else stage
            para = []
            for line in lines[1:]:
                if not line and para:
                    break
                if line:
                    para.append(line)
            return title, " ".join(para)
    return stage, ""


def collect_stages(root: Path) -> list[dict]:
    """One dict per stage id with metrics, in ``dvc.yaml`` order (matrix items after their stage)."""
    metrics_dir = root / "reports" / "metrics"
    ids = sorted(p.stem for p in metrics_dir.glob("*.json")) if metrics_dir.exists() else []
    order = _stage_order(root)
    rank = {name: i for i, name in enumerate(order)}
    ids.sort(key=lambda sid: (rank.get(sid.split("@")[0], len(order)), sid))
    stages = []
    for sid in ids:
        stage = sid.split("@")[0]
        data = json.loads((metrics_dir / f"{sid}.json").read_text(encoding="utf-8"))
        fig_dir = root / "reports" / "figures" / sid
        title, intro = _notebook_intro(root, stage)
        stages.append(
            {
                "id": sid,
                "stage": stage,
                "title": title if "@" not in sid else f"{title} — {sid.split('@', 1)[1]}",
                "intro": intro,
                "metrics": data,
                "figures": sorted(fig_dir.glob("*.png")) if fig_dir.exists() else [],
                "tables": sorted(fig_dir.glob("table_*.csv")) if fig_dir.exists() else [],
                "html": root / "reports" / "html" / f"{sid}.html",
            }
        )
    return stages


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "n/a"
    return html.escape(str(value))


def _table_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f"<td>{_fmt(v if not pd.isna(v) else None)}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><tr>{head}</tr>{rows}</table>"


def _metrics_html(metrics: dict, limit: int = 40) -> str:
    flat = flatten_metrics(metrics)
    if not flat:
        return ""
    items = list(flat.items())[:limit]
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in items)
    more = f"<p class=small>{len(flat) - limit} more values in the metrics file.</p>" if len(flat) > limit else ""
    return f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>{more}"


def build_index(root: Path, out_path: Path, title: str = "vlstudy — Youku-mPLUG study report",
                data_note: str = "") -> Path:
    """Write the report page to `out_path`; returns it. Images are inlined, so the file stands alone."""
    stages = [s for s in collect_stages(root) if s["stage"] != "report"]
    parts = [f"<!doctype html><html lang=zh><head><meta charset=utf-8><title>{html.escape(title)}</title>",
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    if data_note:
        parts.append(f"<div class=note>{html.escape(data_note)}</div>")
    parts.append("<nav>" + "".join(f"<a href='#{html.escape(s['id'])}'>{html.escape(s['id'])}</a>" for s in stages)
                 + "</nav>")
    for s in stages:
        sid = html.escape(s["id"])
        parts.append(f"<h2 id='{sid}'>{html.escape(s['title'])}</h2>")
        if s["intro"]:
            parts.append(f"<p>{html.escape(s['intro'])}</p>")
        link = f"html/{s['html'].name}" if s["html"].exists() else None  # index.html lives in reports/
        seconds = s["metrics"].get("_seconds")
        meta = f"stage <code>{sid}</code>"
        if seconds is not None:
            meta += f" · {seconds:.0f} s"
        if link is not None:
            meta += f" · <a href='{html.escape(str(link))}'>executed notebook</a>"
        parts.append(f"<p class=small>{meta}</p>")
        for table_path in s["tables"]:
            df = pd.read_csv(table_path)
            name = table_path.stem.removeprefix("table_").replace("_", " ")
            parts.append(f"<h3>{html.escape(name)}</h3>{_table_html(df)}")
        parts.append(_metrics_html(s["metrics"]))
        captions = s["metrics"].get("_captions", {})
        for fig in s["figures"]:
            data = base64.b64encode(fig.read_bytes()).decode("ascii")
            cap = html.escape(captions.get(fig.stem, fig.stem))
            parts.append(f"<figure><img alt='{cap}' src='data:image/png;base64,{data}'><figcaption>{cap}"
                         f"</figcaption></figure>")
    parts.append("</body></html>")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(out_path)
    return out_path
