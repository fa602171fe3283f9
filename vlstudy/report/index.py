"""The study's front page: ``reports/index.html``, one self-contained file a reviewer reads in five minutes.

Order: the title (with the profile, and a banner when it is not the default study), the findings table (each
claim of the papers the kit tests, ours with its interval, HOLDS / FAILS), then one section per stage of the
*current* pipeline (matrix cells expanded from params.yaml by DVC itself, so a removed variant disappears even if
its old files remain on disk): what the stage shows, its key parameters, its result tables (titled by the paper
table they reproduce, paper numbers beside ours) and figures, a link to its executed notebook, and its raw metric
values in a collapsed appendix. Stage timings close the page. Images are inlined as base64 and the CJK font is
embedded (`vlstudy.fonts`), so the page renders offline on a machine without a Chinese font.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pandas as pd

from vlstudy import io
from vlstudy.fonts import cjk_characters, embed_cjk_font, font_face_css

__all__ = ["ReportParams", "current_stage_ids", "collect_stages", "render_notebooks", "build_index", "flatten_metrics"]

CSS = """
body{font-family:sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{margin-top:2.2em;border-bottom:1px solid #bbb}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em;display:block;overflow-x:auto;max-width:100%}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f2f2f2}
td:first-child,th:first-child{text-align:left}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.5em 1em;margin:1em 0}
.banner{background:#fde2e1;border:2px solid #c0392b;padding:.6em 1em;margin:1em 0;font-weight:bold}
.holds{color:#1e7b34;font-weight:bold}.fails{color:#b03a2e;font-weight:bold}
figure{margin:1em 0}figcaption{font-size:.9em;color:#555}img{max-width:100%}
nav{display:flex;flex-wrap:wrap;gap:.3em 1em;font-size:.9em}.small{font-size:.85em;color:#666}
details{margin:.5em 0}summary{cursor:pointer;color:#555}code{font-size:.9em}
"""


@dataclass
class ReportParams:
    """``report``: the front page gathering every stage's findings, tables and figures.

    Attributes:
        title: the page title (the profile is appended when it is not the default study).
    """

    title: str = "vlstudy — Youku-mPLUG study report"


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


def current_stage_ids(root: Path) -> list[str]:
    """Every stage id of the workspace's pipeline now, in ``dvc.yaml`` order, matrices expanded by DVC."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [stage.addressing for stage in repo.index.stages]


def _notebook_intro(root: Path, stage: str) -> tuple[str, str]:
    """(title, first paragraph) of the stage notebook's first markdown cell."""
    hits = sorted((root / "notebooks").glob(f"[0-9][0-9]_{stage}.ipynb"))
    if not hits:
        return stage, ""
    for cell in nbformat.read(hits[0], as_version=4).cells:
        if cell.cell_type == "markdown":
            lines = [line.strip() for line in cell.source.strip().splitlines()]
            para = []
            for line in lines[1:]:
                if not line and para:
                    break
                if line:
                    para.append(line)
            return (lines[0].lstrip("# ").strip() if lines else stage), " ".join(para)
    return stage, ""


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def collect_stages(root: Path, stage_ids: list[str] | None = None) -> list[dict]:
    """One dict per stage id that has results: metrics, run record, tables and figures, in pipeline order."""
    reports = Path(root) / "reports"
    stages = []
    for sid in stage_ids if stage_ids is not None else current_stage_ids(root):
        run = _read(reports / "runs" / f"{sid}.json")
        metrics = _read(reports / "metrics" / f"{sid}.json")
        if not run and not metrics:
            continue
        stage = sid.split("@")[0]
        title, intro = _notebook_intro(root, stage)
        fig_dir = reports / "figures" / sid
        stages.append({
            "id": sid, "stage": stage, "intro": intro, "metrics": metrics, "run": run,
            "title": title if "@" not in sid else f"{title} — {sid.split('@', 1)[1]}",
            "figures": sorted(fig_dir.glob("*.png")) if fig_dir.exists() else [],
            "tables": sorted(fig_dir.glob("table_*.csv")) if fig_dir.exists() else [],
            "all_metrics": fig_dir / "all_metrics.csv",  # a stage whose metrics file keeps the headline only
            "html": reports / "html" / f"{sid}.html",
        })
    return stages


def render_notebooks(root: Path, stage_ids: list[str], out_dir: Path) -> list[Path]:
    """Render each stage's executed notebook (``reports/executed/<id>.ipynb``) to HTML that opens offline.

    Figures stay inlined as PNG, no script is loaded from a CDN, and the CJK font is embedded: one subset of it
    covering every page's characters, built once (subsetting costs ~1 s; the pages share it). One process for all
    pages, so nbconvert is imported once. Returns the pages written.
    """
    import re

    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.mathjax_url = ""  # no MathJax from a CDN: the page must open offline (stage notebooks use no LaTeX)
    bodies = {}
    for sid in stage_ids:
        executed = Path(root) / "reports" / "executed" / f"{sid}.ipynb"
        if executed.is_file():
            body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
            bodies[sid] = re.sub(r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>', "", body)
    css = font_face_css(cjk_characters("".join(bodies.values()))) if bodies else ""
    return [io.write_text(Path(out_dir) / f"{sid}.html", embed_cjk_font(body, css)) for sid, body in bodies.items()]


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return f"<span class={'holds' if value else 'fails'}>{'HOLDS' if value else 'FAILS'}</span>"
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.4g}"
    if value is None:
        return ""
    text = html.escape(str(value))
    if text in ("HOLDS", "FAILS"):
        return f"<span class={text.lower()}>{text}</span>"
    return text


def _table_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in df.itertuples(index=False))
    return f"<table><tr>{head}</tr>{rows}</table>"


def _findings_html(reports: Path) -> str:
    findings = reports / "figures" / "findings" / "table_findings.csv"
    if not findings.is_file():
        return "<p class=small>No findings table yet (the findings stage has not run).</p>"
    return _table_html(pd.read_csv(findings))


def _key_params(run: dict) -> str:
    given = run.get("given_params") or {}
    if not given:
        return ""
    items = "; ".join(f"<code>{html.escape(k)}</code> = {html.escape(json.dumps(v, ensure_ascii=False))[:160]}"
                      for k, v in given.items())
    return f"<p class=small>parameters (as params.yaml gives them; the rest from the recipe): {items}</p>"


def _stage_html(s: dict, rendered: set[str] | None) -> list[str]:
    sid = html.escape(s["id"])
    parts = [f"<h2 id='{sid}'>{html.escape(s['title'])}</h2>"]
    if s["intro"]:
        parts.append(f"<p>{html.escape(s['intro'])}</p>")
    meta = f"stage <code>{sid}</code>"
    if s["run"].get("seconds") is not None:
        meta += f" · {s['run']['seconds']:.0f} s"
    if (s["id"] in rendered) if rendered is not None else s["html"].exists():
        meta += f" · <a href='html/{html.escape(s['html'].name)}'>executed notebook</a>"  # index.html is in reports/
    parts += [f"<p class=small>{meta}</p>", _key_params(s["run"])]
    titles = s["run"].get("tables", {})
    for table_path in s["tables"]:
        name = table_path.stem
        title = titles.get(name, name.removeprefix("table_").replace("_", " "))
        parts.append(f"<h3>{html.escape(title)}</h3>{_table_html(pd.read_csv(table_path))}")
    captions = s["run"].get("captions", {})
    for fig in s["figures"]:
        data = base64.b64encode(fig.read_bytes()).decode("ascii")
        cap = html.escape(captions.get(fig.stem, fig.stem))
        parts.append(f"<figure><img alt='{cap}' src='data:image/png;base64,{data}'><figcaption>{cap}</figcaption>"
                     f"</figure>")
    flat = flatten_metrics(s["metrics"])
    if flat:
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_cell(v)}</td></tr>" for k, v in flat.items())
        parts.append(f"<details><summary>all {len(flat)} metric values of this stage</summary>"
                     f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table></details>")
    if s.get("all_metrics") is not None and s["all_metrics"].exists():
        every = pd.read_csv(s["all_metrics"])
        parts.append(f"<details><summary>all {len(every)} numbers of this stage's result (metrics file: headline "
                     f"only)</summary>{_table_html(every)}</details>")
    return parts


def build_index(root: Path, out_path: Path, title: str = ReportParams.title, data_note: str = "",
                profile: str = "default", stage_ids: list[str] | None = None,
                rendered: set[str] | None = None) -> Path:
    """Write the report page to `out_path`; returns it (see the module docstring).

    `rendered`: the stage ids whose HTML page (``reports/html/<id>.html``) this run wrote and the page links to
    (default: those whose page exists)."""
    root = Path(root)
    stages = [s for s in collect_stages(root, stage_ids) if s["stage"] != "report"]
    full_title = title if profile == "default" else f"{title} — profile {profile}"
    parts = [f"<!doctype html><html lang=zh><head><meta charset=utf-8><title>{html.escape(full_title)}</title>",
             f"<style>{CSS}</style></head><body><h1>{html.escape(full_title)}</h1>"]
    if profile != "default":
        parts.append(f"<div class=banner>Profile “{html.escape(profile)}”: not the default study. Sizes differ "
                     f"(see profiles/{html.escape(profile)}.yaml); the numbers below are not the study's results."
                     f"</div>")
    if data_note:
        parts.append(f"<div class=note>{html.escape(data_note)}</div>")
    parts.append("<nav>" + "".join(f"<a href='#{html.escape(s['id'])}'>{html.escape(s['id'])}</a>"
                                   for s in stages) + "</nav>")
    parts.append("<h2 id=findings>Findings: the papers' claims, checked</h2>" + _findings_html(root / "reports"))
    for s in stages:
        parts += _stage_html(s, rendered)
    timing = pd.DataFrame([{"stage": s["id"], "seconds": s["run"].get("seconds")} for s in stages])
    if not timing.empty:
        total = timing["seconds"].fillna(0).sum()
        parts.append(f"<h2 id=timings>Stage timings</h2><p class=small>{total:.0f} s in the stage notebooks "
                     f"(kernel start-up not included).</p>" + _table_html(timing))
    parts.append("</body></html>")
    io.write_text(out_path, embed_cjk_font("\n".join(parts)))
    return out_path
