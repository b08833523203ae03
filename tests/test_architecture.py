"""The shape of the package: layers that import only downward, no import cycles, short modules and
functions (docs/ARCHITECTURE.md). Read from the source with ``ast``: lazy imports inside functions
count like any other.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import imgstore

PACKAGE = pathlib.Path(imgstore.__file__).resolve().parent

#: layer of each module, lowest first; a module takes the layer of its longest dotted prefix listed here.
#: A module may import its own layer and the layers below it, never one above.
LAYERS: dict[str, int] = {
    # helpers every layer uses
    "imgstore._version": 0, "imgstore._pixels": 0, "imgstore.errors": 0, "imgstore.constants": 0,
    "imgstore.color": 0, "imgstore.frame_memory": 0,
    # bytes in and out of a store folder (local or fsspec)
    "imgstore.storage": 1,
    # the files of a store: metadata, chunk indexes, extra data, locks; the original's util names
    "imgstore.format": 2, "imgstore.util": 2,
    # the frame index and its cache
    "imgstore.index": 3, "imgstore.frame_index": 3, "imgstore.index_cache": 3, "imgstore.legacy_index": 3,
    # the frames of one chunk (or one video file)
    "imgstore.codecs": 4, "imgstore.videofile": 4,
    # the ImgStore API
    "imgstore.stores": 5,
    # operations on whole stores, built on the store API
    "imgstore.align": 6, "imgstore.selection": 6, "imgstore.conversion": 6, "imgstore.conversion_chunk": 6,
    "imgstore.process_pool": 6,
    # what users run, and bridges to other libraries
    "imgstore.apps": 7, "imgstore.integrations": 7, "imgstore.tests": 7, "imgstore.ui": 7, "imgstore.font": 7,
    # the composition root: imgstore/__init__.py may import anything
    "imgstore": 8,
}

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
#: (module, function) -> why it may be longer: a flat table of cases that reads better in one piece
LONG_FUNCTIONS: dict[tuple[str, str], str] = {}


def _module_files() -> dict[str, pathlib.Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


MODULES = _module_files()
#: compiled modules (C extensions built from a source beside the package's modules)
EXTENSIONS = {"imgstore." + p.stem for p in PACKAGE.glob("*.c")}
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _known(name: str) -> bool:
    return name in MODULES or name in EXTENSIONS


def _defined_by(package: str, name: str, depth: int = 0) -> str:
    """The module that *name* imported from *package* comes from: a submodule, the module a package's
    ``__init__`` re-exports it from, or the package itself."""
    if _known(f"{package}.{name}"):
        return f"{package}.{name}"
    if package in MODULES and _is_package(package) and depth < 8:
        for node in TREES[package].body:
            if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
                source = _absolute(package, node)
                if source and source.startswith("imgstore"):
                    original = next(a.name for a in node.names if (a.asname or a.name) == name)
                    return _defined_by(source, original, depth + 1)
    return package


def _absolute(module: str, node: ast.ImportFrom) -> str | None:
    if not node.level:
        return node.module
    parts = module.split(".") if _is_package(module) else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _imports(module: str) -> set[str]:
    """Every module of the package that *module* imports, anywhere in its code."""
    out = set()
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "imgstore"]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            if not source or source.split(".")[0] != "imgstore":
                continue
            names = [_defined_by(source, a.name) for a in node.names]
        else:
            continue
        for name in names:
            while not _known(name) and "." in name:
                name = name.rsplit(".", 1)[0]
            if name != module:
                out.add(name)
    return out


GRAPH = {m: _imports(m) for m in MODULES}


def layer_of(module: str) -> int:
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        layer = LAYERS.get(".".join(parts[:k]))
        if layer is not None and (k > 1 or module == "imgstore"):
            return layer
    raise AssertionError(f"{module} has no layer: add it to LAYERS in {__file__}")


def test_every_module_has_a_layer():
    for module in list(MODULES) + sorted(EXTENSIONS):
        layer_of(module)


def test_imports_go_only_to_the_same_or_a_lower_layer():
    upward = [f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
              for m, targets in sorted(GRAPH.items()) for t in sorted(targets) if layer_of(t) > layer_of(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in sorted(GRAPH.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(cycles)


def test_the_layers_below_the_apps_import_nothing_above_stores():
    # the dask bridge and every other integration are wired in by the composition root
    for m, targets in GRAPH.items():
        if layer_of(m) <= LAYERS["imgstore.stores"]:
            assert not {t for t in targets if t.startswith(("imgstore.apps", "imgstore.integrations"))}, m


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_are_short(module):
    lines = MODULES[module].read_text().count("\n")
    assert lines <= MAX_MODULE_LINES, f"{MODULES[module]}: {lines} lines (at most {MAX_MODULE_LINES})"


def test_functions_are_short():
    long = []
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES and (module, node.name) not in LONG_FUNCTIONS:
                    long.append(f"{MODULES[module]}:{node.lineno} {node.name}: {n} lines")
    assert not long, "\n".join(long)


def test_the_graph_sees_known_edges():
    # the reading of imports itself: relative, lazy, re-exported and compiled modules
    assert "imgstore.stores.base" in GRAPH["imgstore.stores.factory"]
    assert "imgstore.codecs.video" in GRAPH["imgstore.stores.video"]  # imported inside a function
    assert "imgstore._pixels" in GRAPH["imgstore.color"] or not EXTENSIONS
    assert "imgstore.integrations.dask" in GRAPH["imgstore"]
    assert "imgstore.stores.factory" in GRAPH["imgstore.integrations.dask"]  # re-exported by imgstore.stores
