"""The package's import graph: no cycles, every import goes down the layer table, the metric math imports no I/O.

Read with ``ast`` (nothing is imported): module-level and function-local imports alike, relative and absolute.
``from P import x`` depends on the module ``P.x`` when there is one, else on ``P``. A module may import modules of
its own layer or of a lower one; a new module must be given a layer in ``LAYERS``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "runtime" / "audiofidelity"

LAYERS: list[tuple[str, list[str]]] = [  # lowest first; "x.*" is every module under package x (and x itself)
    ("base: errors, checks, memory, the C heap, atomic outputs",
     ["_version", "errors", "validation", "memory", "heap", "float32_conv", "outputs"]),
    ("signal: decoding, resampling, frontends, text", ["resample", "audio", "frontends", "tokenizer", "captions"]),
    ("model families: what each model is and how it is fed", ["models.*"]),
    ("metric math (pure: see PURE)", ["metrics.*"]),
    ("artifacts: registry, store, catalog", ["registry", "artifacts", "catalog"]),
    ("running models, feature cache", ["runner", "cache"]),
    ("pipeline: features of a folder, pairs, diagnostics, captions' embeddings",
     ["features", "paired", "diagnostics", "text_tower"]),
    ("statistics and reference-probabilities files, metric table, SC09, the settings object",
     ["stats", "probabilities", "metric_table", "sc09", "settings"]),
    ("evaluate", ["evaluate"]),
    ("Python API over evaluate, pictures of reports",
     ["", "multidevice", "embedder", "reporting", "training_logs", "plots", "compat.*"]),
    ("service", ["server.*"]),
    ("command line", ["cli.*", "__main__"]),
]
PURE = "metrics"
"""Metric math: imports only itself and PURE_ALLOWED (no file formats, no I/O, no models)."""
PURE_ALLOWED = {
    "errors",
    "validation",  # the argument checks of MetricOptions
    "frontends",  # the NumPy STFT (librosa's arithmetic) LSD shares with the mel frontends
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` (package-relative, dotted) that is a module of the package."""
    while name not in modules:
        if "." not in name:
            return None if name else ("" if "" in modules else None)
        name = name.rpartition(".")[0]
    return name


def imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of the package that ``name`` imports anywhere in its source (package-relative names)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [p for p in package if p]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.split(".")[0] == "audiofidelity"]
            targets = [t.partition(".")[2] for t in targets]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "audiofidelity":
                base = node.module.partition(".")[2]
            else:
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}" if base else alias.name
                targets.append(child if child in modules else base)
        for target in targets:
            module = _known(target, modules)
            if module is not None and module != name:
                found.add(module)
    return found


def layer_of(name: str) -> int | None:
    for level, (_, members) in enumerate(LAYERS):
        for member in members:
            if name == member or (member.endswith(".*") and (name == member[:-2] or
                                                            name.startswith(member[:-1]))):
                return level
    return None


def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: imports(name, path, modules) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _show(name: str) -> str:
    return f"audiofidelity.{name}" if name else "audiofidelity"


def test_every_module_has_a_layer():
    missing = [_show(m) for m in graph() if layer_of(m) is None]
    assert not missing, (f"module(s) without a layer: {', '.join(missing)}; add each to LAYERS in {__file__} "
                         f"(the lowest layer whose modules it may import)")


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(_show(m) for m in c) for c in found)


def test_imports_go_down_the_layers():
    edges = graph()
    upward = [f"{_show(m)} ({LAYERS[layer_of(m)][0]}) imports {_show(t)} ({LAYERS[layer_of(t)][0]})"
              for m in sorted(edges) for t in sorted(edges[m])
              if layer_of(m) is not None and layer_of(t) is not None and layer_of(t) > layer_of(m)]
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_metric_math_imports_no_io():
    edges = graph()
    impure = [f"{_show(m)} imports {_show(t)}" for m in sorted(edges) if m == PURE or m.startswith(PURE + ".")
              for t in sorted(edges[m]) if not (t == PURE or t.startswith(PURE + ".")) and t not in PURE_ALLOWED]
    assert not impure, "the metric math imports outside metrics/: " + "; ".join(impure)


@pytest.mark.parametrize("source,expected", [
    ("from .. import errors", {"errors"}),
    ("from . import frechet, GaussianStats", {"metrics.frechet", "metrics"}),
    ("from ..stats import ReferenceStats", {"stats"}),
    ("def f():\n    import audiofidelity.cli.common as c", {"cli.common"}),
    ("from audiofidelity import __version__", {""}),
])
def test_the_reader_sees_every_kind_of_import(tmp_path, source, expected):
    """Relative, absolute, function-local and package-attribute imports all count (read from metrics/kl.py)."""
    modules = _modules()
    path = tmp_path / "kl.py"
    path.write_text(source, encoding="utf-8")
    assert imports("metrics.kl", path, modules) == expected
