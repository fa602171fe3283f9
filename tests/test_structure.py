"""The package's shape: layers with one direction of imports, no import cycle, DVC code deps that cannot go stale,
modules a student can read in one sitting."""

from pathlib import Path

import pytest

from vlstudy.pipeline.deps import check_deps, import_graph, module_files

ROOT = Path(__file__).resolve().parents[1]
GRAPH = import_graph(ROOT)

# Lower layers first; a module may import its own layer and the layers before it, never a later one.
LAYERS = (
    ("vlstudy", "vlstudy.io", "vlstudy.plotting", "vlstudy.fonts"),
    ("vlstudy.config", "vlstudy.distributed"),
    ("vlstudy.data",),
    ("vlstudy.metrics",),
    ("vlstudy.models",),
    ("vlstudy.train",),
    ("vlstudy.humaneval", "vlstudy.panda"),
    ("vlstudy.tasks",),
    ("vlstudy.report",),
    ("vlstudy.pipeline",),
)
MAX_LINES = 450
MAX_MODEL_LINES = 400  # STYLE.md: a student reads a model file in one sitting


def layer_of(module: str) -> int:
    """The layer of `module`: the layer of its longest matching prefix."""
    best = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    assert best is not None, f"{module} is in no layer of tests/test_structure.py"
    return best[0]


def test_layer_of_uses_the_longest_prefix():
    assert layer_of("vlstudy") == 0 and layer_of("vlstudy.io") == 0 and layer_of("vlstudy.data.video") == 2
    assert layer_of("vlstudy.pipeline.stage") == 9


def test_no_import_goes_up_the_layers():
    upward = [f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
              for m, deps in GRAPH.items() for d in deps if layer_of(d) > layer_of(m)]
    assert upward == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_dvc_yaml_lists_every_stages_import_closure():
    """`vlstudy sync` writes them; a file a stage imports but dvc.yaml misses would let DVC reuse stale outputs."""
    assert check_deps(ROOT) == []


@pytest.mark.parametrize("module", sorted(module_files(ROOT)))
def test_modules_stay_readable(module):
    lines = len(module_files(ROOT)[module].read_text(encoding="utf-8").splitlines())
    limit = MAX_MODEL_LINES if module.startswith("vlstudy.models.") else MAX_LINES
    assert lines <= limit, f"{module} has {lines} lines (at most {limit}): split it"
