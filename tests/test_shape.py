"""The code's shape stays readable: modules short enough to read in one sitting, classes
with few attributes, no import circles, no two services with a same-named module.

Pure source checks (ast), no servers."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "tarn_shared": ROOT / "shared" / "tarn_shared",
    "tarn_am": ROOT / "services" / "am" / "tarn_am",
    "tarn_node_agent": ROOT / "services" / "node-agent" / "tarn_node_agent",
    "tarn_gateway_sync": ROOT / "services" / "gateway-sync" / "tarn_gateway_sync",
    "tarn_authz": ROOT / "services" / "authz" / "tarn_authz",
}
MAX_LINES = 300
MAX_ATTRIBUTES = 12
# The event schema catalogue is one module on purpose (changes to it are additive only).
LONG_ALLOWED = {ROOT / "shared" / "tarn_shared" / "events.py"}
# STYLE.md's layout gives every service these modules.
LAYOUT_NAMES = {"__init__.py", "__main__.py", "app.py", "settings.py"}
# Declarations, not state: a settings class or an event/payload schema lists its fields.
SCHEMA_BASES = {"BaseModel", "BaseSettings", "TarnSettings", "Event", "Command", "NamedTuple", "TypedDict"}


def _modules() -> Iterator[Tuple[str, Path]]:
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((package,) + parts), path


MODULES = dict(_modules())


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def test_no_module_is_longer_than_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in MODULES.values()
            if p not in LONG_ALLOWED and (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"split these by responsibility: {long}"


def _attributes(cls: ast.ClassDef) -> Set[str]:
    """Instance attributes set in the class's methods, plus dataclass-style annotated fields."""
    names = {t.target.id for t in cls.body if isinstance(t, ast.AnnAssign) and isinstance(t.target, ast.Name)
             and not (isinstance(t.annotation, ast.Name) and t.annotation.id == "ClassVar")}
    for node in ast.walk(cls):
        targets: List[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Attribute) and isinstance(leaf.value, ast.Name) and leaf.value.id == "self":
                    names.add(leaf.attr)
    return names


def _is_schema(cls: ast.ClassDef) -> bool:
    bases = {b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "" for b in cls.bases}
    return bool(bases & SCHEMA_BASES) or any(b.endswith(("Settings", "Event", "Model")) for b in bases)


def test_no_class_holds_more_than_12_attributes():
    crowded = {}
    for module, path in MODULES.items():
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ClassDef) and not _is_schema(node):
                count = len(_attributes(node))
                if count > MAX_ATTRIBUTES:
                    crowded[f"{module}.{node.name}"] = count
    assert crowded == {}, f"split these classes by role: {crowded}"


def _imports(module: str, path: Path) -> Set[str]:
    """Modules of the same package this one imports, anywhere (TYPE_CHECKING too: a circle
    hidden from the interpreter is still one for the reader)."""
    package = module.split(".")[0]
    is_package = path.name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    found: Set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == package)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != package:
                continue
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return {m for m in found if m in MODULES and m != module}


def _cycle(graph: Dict[str, Set[str]]) -> List[str]:
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_circle_inside_a_package(package):
    # A package importing its own submodules (or a submodule its package) is no circle.
    graph = {m: {t for t in _imports(m, p) if not m.startswith(t + ".") and not t.startswith(m + ".")}
             for m, p in MODULES.items() if m.split(".")[0] == package}
    assert _cycle(graph) == [], "import circle"


def test_no_two_services_share_a_module_name():
    seen: Dict[str, List[str]] = {}
    for module, path in MODULES.items():
        if module.startswith("tarn_shared") or path.name in LAYOUT_NAMES:
            continue
        seen.setdefault(path.name, []).append(module.split(".")[0])
    shared = {name: owners for name, owners in seen.items() if len(set(owners)) > 1}
    assert shared == {}, f"rename for the role: {shared}"


def test_services_import_only_shared_and_themselves():
    services = {p for p in PACKAGES if p != "tarn_shared"}
    crossing = set()
    for module, path in MODULES.items():
        own = module.split(".")[0]
        for node in ast.walk(_tree(path)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            crossing.update((module, n) for n in names if n.split(".")[0] in services - {own}
                            or (own == "tarn_shared" and n.split(".")[0] in services))
    assert crossing == set()
