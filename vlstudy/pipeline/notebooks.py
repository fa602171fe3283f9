"""Stage notebooks and their ``parameters`` cells.

Papermill injects a stage's ``params.yaml`` section after the cell tagged ``parameters``; that cell holds the
values a student sees and edits when opening the notebook in JupyterLab. The two agree (STYLE.md rule 2): the
cell is the section verbatim, one key per line with a short comment taken from the params dataclass's
docstring. Keys the section leaves out come from the shared ``recipe`` of params.yaml (`vlstudy.config`).
``parameters_cell`` reads a cell back as a dict (``ast.literal_eval``, never ``eval``); ``sync_parameters``
rewrites cells from a params file (``vlstudy sync``); the test suite compares the two for every stage.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat

from vlstudy.config import field_docs
from vlstudy.pipeline.registry import params_class
from vlstudy.pipeline.runner import load_section
from vlstudy.pipeline.stage import PARAMS_FILE

__all__ = ["parameters_cell", "percent_to_notebook", "render_parameters", "stage_notebooks", "sync_parameters"]

_STEM = re.compile(r"^\d\d_(?P<stage>.+)$")
_WIDTH = 100


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


def _literal(value, indent: int) -> str:
    """`value` as a Python literal; a long mapping one key per line."""
    text = repr(value)
    if not isinstance(value, dict) or len(text) + indent <= _WIDTH:
        return text
    pad = " " * (indent + 4)
    items = ",\n".join(f"{pad}{k!r}: {_literal(v, indent + 4)}" for k, v in value.items())
    return "{\n" + items + ",\n" + " " * indent + "}"


def render_parameters(section: dict, cls: type | None = None) -> str:
    """Python source for a parameters cell holding `section`: one assignment per key, commented from `cls`."""
    docs = field_docs(cls) if cls is not None else {}
    lines = ["# Parameters: this stage's section of params.yaml (papermill injects the values of a pipeline run).",
             "# Keys left out take the shared `recipe` of params.yaml."]
    for key, value in section.items():
        literal = _literal(value, 0)
        comment = f"  # {docs[key]}" if docs.get(key) else ""
        if "\n" in literal:
            first, rest = literal.split("\n", 1)
            lines.append(f"{key} = {first}{comment}\n{rest}")
        else:
            lines.append(f"{key} = {literal}{comment}")
    return "\n".join(lines)


def sync_parameters(root: Path, stages: list[str] | None = None, params_file: str = PARAMS_FILE,
                    quiet: bool = False) -> int:
    """Rewrite the parameters cell of each (or the named) stage notebook under `root` from its params file."""
    notebooks = stage_notebooks(root)
    for stage in stages or list(notebooks):
        path = notebooks[stage]
        nb = nbformat.read(path, as_version=4)
        cell = nb.cells[_find_parameters_cell(nb)]
        source = render_parameters(load_section(root, stage, params_file), params_class(stage))
        if cell.source != source:
            cell.source = source
            nbformat.write(nb, path)
            if not quiet:
                print(f"synced {path.relative_to(root)} from {params_file}")
    return 0


def percent_to_notebook(text: str, kernel: str = "vlstudy") -> nbformat.NotebookNode:
    """Build a notebook from ``# %%`` percent-format text (``# %% [markdown]`` for markdown cells).

    A code cell whose first line is ``# %% tags=["parameters"]`` is tagged ``parameters``. For writing notebooks
    in a text editor; the ``.ipynb`` is the committed source (run ``vlstudy sync`` after to fill the parameters).
    """
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": "Python (vlstudy)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for chunk in re.split(r"^# %%", text, flags=re.MULTILINE)[1:]:
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
