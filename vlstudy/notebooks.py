"""Stage notebooks and their ``parameters`` cells.

Papermill injects a stage's ``params.yaml`` section after the cell tagged ``parameters``; that cell holds the
defaults a student sees when opening the notebook in Jupyter. The two must agree (STYLE.md rule 2): the same
keys, the same default values. ``parameters_cell`` reads the cell back as a dict (with ``ast.literal_eval``,
never ``eval``), ``sync_parameters`` rewrites it from ``params.yaml`` (``vlstudy sync-params``), and the test
suite compares the two for every stage.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import yaml

from vlstudy.pipeline import PARAMS_FILE, load_section

__all__ = ["parameters_cell", "render_parameters", "sync_parameters", "percent_to_notebook", "stage_notebooks"]

_STEM = re.compile(r"^\d\d_(?P<stage>.+)$")


def stage_notebooks(root: Path) -> dict[str, Path]:
    """``{stage name: notebook path}`` for every ``notebooks/NN_<stage>.ipynb``."""
    out = {}
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        m = _STEM.match(path.stem)
        if m:
            out[m.group("stage")] = path
    return out


def _find_parameters_cell(nb) -> int:
    hits = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(hits) != 1:
        raise ValueError(f"expected exactly one cell tagged 'parameters', found {len(hits)}")
    return hits[0]


def parameters_cell(path: Path) -> dict:
    """The ``name = literal`` assignments of a notebook's ``parameters`` cell, as a dict."""
    nb = nbformat.read(path, as_version=4)
    source = nb.cells[_find_parameters_cell(nb)].source
    out = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ValueError(f"{path.name}: the parameters cell may only hold `name = literal` lines")
        out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def render_parameters(section: dict) -> str:
    """Python source for a parameters cell holding `section` (one assignment per key, literals only)."""
    lines = ["# Parameters: the defaults are this stage's section of params.yaml (papermill overrides them)."]
    for key, value in section.items():
        lines.append(f"{key} = {value!r}")
    return "\n".join(lines)


def sync_parameters(root: Path, stages: list[str] | None = None) -> int:
    """Rewrite the parameters cell of each (or the named) stage notebook from ``params.yaml``."""
    notebooks = stage_notebooks(root)
    for stage in stages or list(notebooks):
        path = notebooks[stage]
        nb = nbformat.read(path, as_version=4)
        nb.cells[_find_parameters_cell(nb)].source = render_parameters(load_section(root, stage))
        nbformat.write(nb, path)
        print(f"synced {path.relative_to(root)} from {PARAMS_FILE}")
    return 0


def percent_to_notebook(text: str, kernel: str = "vlstudy") -> nbformat.NotebookNode:
    """Build a notebook from ``# %%`` percent-format text (``# %% [markdown]`` for markdown cells).

    A code cell whose first line is ``# %% tags=["parameters"]`` is tagged ``parameters``. Used to write
    notebooks in a text editor; the ``.ipynb`` is the committed source.
    """
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": "Python (vlstudy)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for chunk in re.split(r"^# %%", text, flags=re.M)[1:]:
        header, _, body = chunk.partition("\n")
        body = body.strip("\n")
        if header.strip().startswith("[markdown]"):
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.splitlines())
            nb.cells.append(nbformat.v4.new_markdown_cell(body))
        else:
            cell = nbformat.v4.new_code_cell(body)
            if "parameters" in header:
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"
    return nb


def load_params_file(root: Path) -> dict:
    with open(root / PARAMS_FILE, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}
