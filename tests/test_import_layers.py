"""The package's import graph: no cycle between modules, no import from a lower layer into a higher one.

Every module under ``funcodec_lite/`` is parsed (not imported): ``import`` and ``from ... import`` statements
anywhere in it (inside functions too), and string constants that name a module of the package (a registry
that ``importlib`` resolves later), are its edges. The layers are those of ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
import warnings
from collections import defaultdict
from pathlib import Path

import funcodec_lite

PACKAGE = Path(funcodec_lite.__file__).parent
ROOT = "funcodec_lite"
# bottom to top: a module may import its own layer (without a cycle) and every layer below it
LAYERS: tuple[tuple[str, ...], ...] = (
    ("utils",),
    ("audio", "modules", "quantization", "losses", "discriminators", "metrics", "data"),  # building blocks
    ("train",),  # the training engine: loop, checkpoints, logging (each model's task sits beside the model)
    ("codec",),  # the codec model and its training task
    ("inference",),  # using a trained codec: tokenizer, streaming, token files
    ("lm", "vocoders"),  # token models; mel -> waveform
    ("foley",),  # the Foley models, assembled from token models and vocoders
    ("jobs", "convert"),  # dataset-level work; imported checkpoints
    ("recipes",),  # the stages of egs/<name>/run.sh
    (ROOT,),  # funcodec_lite/__init__.py: the public entry point
    ("cli",),
)
# Known violations, being fixed elsewhere: a cycle through one of these modules, an upward import listed
# here (none left; the tests warn when an entry is gone)
KNOWN_CYCLE_MEMBERS: set[str] = set()
KNOWN_UPWARD: set[str] = set()


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (packages by their __init__)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest module prefix of ``name`` (``pkg.mod.attr`` -> ``pkg.mod``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.AST, module: str, is_package: bool, modules: dict[str, Path]) -> list[str]:
    """The package modules one AST node refers to (an import statement or a module-name string)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: from the module's package, one level up per extra dot
            package = (module if is_package else module.rpartition(".")[0]).split(".")
            package = package[: len(package) - node.level + 1]
            base = ".".join(package + ([node.module] if node.module else []))
        return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in modules:
        return [node.value]
    return []


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in its code)."""
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for target in _targets(node, module, is_package, modules):
                if target == ROOT or target.startswith(ROOT + "."):
                    resolved = _resolve(target, modules)
                    if resolved and resolved != module:
                        graph[module].add(resolved)
        graph.setdefault(module, set())
    return dict(graph)


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components of more than one module (each sorted): every import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[tuple[str, ...]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]  # iterative Tarjan (no recursion limit)
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(tuple(sorted(component)))
    return found


def layer_of(module: str) -> int:
    """The layer index of a module (its top-level package, or the package root itself)."""
    package = module.split(".")[1] if "." in module else ROOT
    for level, packages in enumerate(LAYERS):
        if package in packages:
            return level
    raise KeyError(f"{module}: package {package!r} is in no layer; add it to LAYERS and docs/architecture.md")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``"a -> b"`` for every import of a module in a higher layer."""
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a))


def test_every_package_has_a_layer():
    packages = {m.split(".")[1] for m in import_graph() if "." in m}
    placed = {p for layer in LAYERS for p in layer}
    assert packages <= placed, f"packages in no layer: {sorted(packages - placed)}"


def test_no_import_cycles():
    found = cycles(import_graph())
    new = [c for c in found if not KNOWN_CYCLE_MEMBERS & set(c)]
    assert not new, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in new)
    gone = {m for m in KNOWN_CYCLE_MEMBERS if not any(m in c for c in found)}
    if gone:
        warnings.warn(f"no cycle left through {sorted(gone)}: remove from KNOWN_CYCLE_MEMBERS", stacklevel=1)


def test_no_upward_imports():
    found = set(upward_imports(import_graph()))
    assert not found - KNOWN_UPWARD, "upward imports:\n" + "\n".join(sorted(found - KNOWN_UPWARD))
    if KNOWN_UPWARD - found:
        warnings.warn(f"fixed, remove from KNOWN_UPWARD: {sorted(KNOWN_UPWARD - found)}", stacklevel=1)


def test_the_walker_sees_imports_in_functions_relative_imports_and_registries(tmp_path):
    modules = {"funcodec_lite.a": tmp_path, "funcodec_lite.a.b": tmp_path, "funcodec_lite.c": tmp_path}
    source = ("def f():\n    from .b import x\n    import funcodec_lite.c\n"
              "REGISTRY = {'k': 'funcodec_lite.c'}\n")
    found = {t for node in ast.walk(ast.parse(source))
             for t in _targets(node, "funcodec_lite.a", True, modules)}
    assert found == {"funcodec_lite.a.b", "funcodec_lite.c"}
    assert cycles({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}}) == [("x", "y", "z")]
