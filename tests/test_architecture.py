"""The package's import graph: no cycles, and every room imports only rooms below it.

Every `import` in every module counts, those inside functions too (a cycle
held together by a function-level import is still a cycle). The graph is read
from the source with `ast`, so nothing is imported to draw it.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Source folder → the package it installs as (pyproject.toml `package-dir`).
SOURCES = {
    "keras_ca2st": "keras_ca2st",
    "kernels": "keras_ca2st.kernels",
    "presets": "keras_ca2st.presets",
}
# Which rooms each room may import (its own always). Files → data → model →
# training → reports; conversion and presets sit above the models; the CLI
# and the benchmarks on top. The README's layout table draws the same thing.
ALLOWED = {
    "version": set(),
    "lazy": set(),
    "kernels": set(),
    "experts": {"kernels"},  # the fused-attention switch (`kernels/config.py`)
    "data": {"lazy"},
    "fusion": {"experts", "kernels"},
    "models": {"experts", "fusion", "data"},
    "conversion": {"experts", "models", "lazy"},
    "presets": {"conversion", "models", "version", "lazy"},
    "training": {"data", "models", "lazy"},
    # Pictures and tables of what models and runs did: attention maps,
    # timelines, training curves, confusion matrices, the B-CA windows (cut by
    # the kernels' own window definitions).
    "reports": {"kernels", "data", "models", "training", "lazy"},
    # A trained model outside Keras: ONNX and SavedModel files.
    "export": {"data", "models", "training", "lazy"},
    "benchmarks": {"kernels", "experts", "data", "models", "presets", "training"},
    "cli": {
        "root",  # `keras_ca2st.load_all()`: what a command that runs models needs
        "version",
        "experts",
        "data",
        "models",
        "conversion",
        "presets",
        "training",
        "benchmarks",
        "reports",
        "export",
    },
}


def package_modules():
    """`{module name: (path, is_package)}` of every module the package installs."""
    modules = {}
    for folder, package in SOURCES.items():
        base = os.path.join(ROOT, folder)
        for directory, subdirs, files in os.walk(base):
            subdirs[:] = [d for d in subdirs if not d.startswith((".", "__"))]
            relative = os.path.relpath(directory, base)
            parts = [] if relative == "." else relative.split(os.sep)
            for file in files:
                if not file.endswith(".py"):
                    continue
                stem = file[:-3]
                names = [package, *parts] + ([] if stem == "__init__" else [stem])
                modules[".".join(names)] = (
                    os.path.join(directory, file),
                    stem == "__init__",
                )
    return modules


def import_edges(modules):
    """`{module: {imported package module, ...}}` from every import statement."""
    edges = {}
    for name, (path, is_package) in modules.items():
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read(), path)
        package = name if is_package else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
            elif _is_lazy_exports_call(node):
                # `lazy_exports(__name__, {name: submodule, ...})`: the
                # package imports each of those submodules when a name is used.
                targets.update(
                    f"{package}.{_submodule(value)}" for value in node.args[1].values
                )
                continue
            else:
                continue
            for candidate in candidates:
                # The longest prefix that is one of our modules.
                while candidate and candidate not in modules:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name:
                    targets.add(candidate)
                    break
        edges[name] = targets
    return edges


def _is_lazy_exports_call(node):
    return (
        isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "lazy_exports"
        and len(node.args) == 2
        and isinstance(node.args[1], ast.Dict)
    )


def _submodule(value):
    """The submodule of a `lazy_exports` entry: `"name"` or `("name", attribute)`."""
    return ast.literal_eval(
        value if not isinstance(value, ast.Tuple) else value.elts[0]
    )


def room(module):
    parts = module.split(".")
    return "root" if len(parts) == 1 else parts[1]


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph():
    return import_edges(package_modules())


def test_the_graph_reader_sees_the_package(graph):
    # Guards the reader itself: a broken walk would pass every check below.
    assert len(graph) > 60
    assert "keras_ca2st.presets.loader" in graph["keras_ca2st.presets"]
    assert "keras_ca2st.models" in graph["keras_ca2st.presets.loader"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_package_has_no_import_cycle(graph):
    assert cycles(graph) == []


def test_no_room_imports_a_room_above_it(graph):
    assert set(ALLOWED) >= {room(m) for m in graph} - {"root"}
    violations = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if room(module) not in ("root", room(target))
        and room(target) not in ALLOWED[room(module)]
    )
    assert violations == []


def test_no_lazily_exported_name_is_also_a_submodule():
    # Importing a submodule binds its name on the package, hiding a lazily
    # exported function of the same name (`from pkg import f` would return
    # the module `pkg.f`).
    modules = package_modules()
    clashes = []
    for name, (path, is_package) in modules.items():
        if not is_package:
            continue
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read(), path)
        for node in ast.walk(tree):
            if _is_lazy_exports_call(node):
                clashes += [
                    f"{name}.{key.value}"
                    for key in node.args[1].keys
                    if f"{name}.{key.value}" in modules
                ]
    assert clashes == []
