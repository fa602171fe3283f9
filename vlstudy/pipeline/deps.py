"""Code dependencies of each DVC stage, derived from what its notebook imports (never typed by hand).

DVC reruns a stage when one of its ``deps`` changes. For code, the right set is every file of the package that
the stage's notebook runs: the modules its code cells import, and everything those import, transitively (plus
the ``__init__.py`` of each package on the way, which Python runs too). Typed by hand, such lists go stale: a
reviewer's ``dvc repro`` then reuses outputs computed by old code. Here the closure is computed from the
sources with `ast` (imports inside functions count too), and ``vlstudy sync`` writes it into ``dvc.yaml``; a test
fails when ``dvc.yaml`` differs from it.

``dvc.yaml`` stays the hand-written description of the pipeline: only the ``vlstudy/...`` entries of each stage's
``deps`` are rewritten (with ruamel.yaml, which DVC itself uses, so comments and layout survive); data and
checkpoint deps stay as written. The stage runner (`vlstudy.pipeline.runner`) is not a dependency: it checks
params and moves files, it computes nothing a stage outputs.

Written by hand: the standard library's ``modulefinder`` follows the whole standard library and site-packages
and cannot read notebooks; restricted to one package the closure is ~40 lines of `ast`.
"""

from __future__ import annotations

import ast
from io import StringIO
from pathlib import Path
from typing import get_args, get_origin

import nbformat

from vlstudy.pipeline.notebooks import stage_notebooks

__all__ = [
    "PACKAGE",
    "check_deps",
    "closure",
    "import_graph",
    "imports_of",
    "module_files",
    "notebook_closure",
    "stage_code_deps",
    "sync_deps",
]

PACKAGE = "vlstudy"


def module_files(root: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` for every module of the package under `root`."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


def imports_of(source: str, package: str, modules: dict[str, Path]) -> set[str]:
    """Package modules that `source` imports (absolute and relative; ``from a import b`` counts ``a.b`` when it
    is a module). `package` is the importing module's package, for relative imports."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {m for m in found if m in modules}


def import_graph(root: Path) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``."""
    modules = module_files(root)
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = imports_of(path.read_text(encoding="utf-8"), package, modules) - {name}
    return graph


def closure(start: set[str], graph: dict[str, set[str]]) -> set[str]:
    """`start` and every module reachable from it, with the parent packages Python initialises on the way."""
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name in seen or name not in graph:
            continue
        seen.add(name)
        todo += graph[name]
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
    return seen


def notebook_closure(notebook: Path, root: Path, graph: dict[str, set[str]] | None = None) -> set[str]:
    """Modules of the package that running `notebook` executes."""
    graph = graph if graph is not None else import_graph(root)
    nb = nbformat.read(notebook, as_version=4)
    source = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    return closure(imports_of(source, "", module_files(root)), graph)


def stage_code_deps(root: Path) -> dict[str, list[str]]:
    """``{stage: sorted package files its notebook runs}`` (paths relative to `root`)."""
    graph, modules = import_graph(root), module_files(root)
    return {stage: sorted(str(modules[m].relative_to(root)) for m in notebook_closure(nb, root, graph))
            for stage, nb in stage_notebooks(root).items()}


def recipe_keys(cls: type, recipe: dict) -> set[str]:
    """The keys of the shared ``recipe`` that fill some field of dataclass `cls` (at any depth): what a stage's
    params really depend on besides its own section."""
    from vlstudy.config import _dataclass_in, _field_types, param_fields, recipe_applies

    found: set[str] = set()
    fields = [f for f in param_fields(cls) if f.init]
    for f, tp in _field_types(cls, fields).items():
        if recipe_applies(f, tp, recipe):
            found.add(f)
        sub = _dataclass_in(tp)
        if sub is None and get_origin(tp) is dict:
            sub = _dataclass_in((get_args(tp) or (None, None))[1])
        if sub is not None:
            found |= recipe_keys(sub, recipe)
    return found


def stage_recipe_params(root: Path) -> dict[str, list[str]]:
    """``{stage: ["recipe.<key>", ...]}``: the recipe entries each stage's params dataclass uses."""
    from vlstudy.config import RECIPE_SECTION, read_params
    from vlstudy.pipeline.registry import STAGES, params_class

    recipe = read_params(root).get(RECIPE_SECTION, {})
    return {stage: [f"{RECIPE_SECTION}.{k}" for k in sorted(recipe_keys(params_class(stage), recipe))]
            for stage in STAGES}


def _is_recipe(entry) -> bool:
    return isinstance(entry, str) and entry.startswith("recipe.")


def _is_code(dep: str) -> bool:
    return dep == PACKAGE or dep.startswith(PACKAGE + "/")


def check_deps(root: Path) -> list[str]:
    """Differences between each stage's code deps in ``dvc.yaml`` and its derived import closure (empty: in sync)."""
    from ruamel.yaml import YAML

    stages = YAML().load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    problems = []
    for stage, wanted in stage_code_deps(root).items():
        if stage not in stages:
            continue
        listed = [str(d) for d in stages[stage].get("deps", []) if _is_code(str(d))]
        missing, extra = sorted(set(wanted) - set(listed)), sorted(set(listed) - set(wanted))
        problems += [f"{stage}: missing {p}" for p in missing] + [f"{stage}: not imported {p}" for p in extra]
    for stage, wanted in stage_recipe_params(root).items():
        listed = [str(p) for p in stages.get(stage, {}).get("params", []) if _is_recipe(p)]
        if sorted(listed) != wanted:
            problems.append(f"{stage}: params lists {listed} of the recipe, its dataclass uses {wanted}")
    return problems


def sync_deps(root: Path) -> bool:
    """Rewrite the code entries of every stage's ``deps`` in ``dvc.yaml`` from the import closures; returns
    whether the file changed."""
    from ruamel.yaml import YAML

    from vlstudy.io import write_text

    yaml = YAML()
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    path = root / "dvc.yaml"
    text = path.read_text(encoding="utf-8")
    doc = yaml.load(text)
    for stage, wanted in stage_code_deps(root).items():
        if stage not in doc["stages"]:
            continue
        deps = doc["stages"][stage].setdefault("deps", [])
        kept = [d for d in deps if not _is_code(str(d))]
        deps.clear()
        deps.extend(kept + wanted)
    for stage, wanted in stage_recipe_params(root).items():
        if stage not in doc["stages"]:
            continue
        params = doc["stages"][stage].setdefault("params", [])
        kept = [p for p in params if not _is_recipe(p)]
        params.clear()
        params.extend(kept + wanted)
    buffer = StringIO()
    yaml.dump(doc, buffer)
    if buffer.getvalue() == text:
        return False
    write_text(path, buffer.getvalue())
    return True
