"""The module graph points one way (issue 9): no import cycle among shmrt's
Python modules, counting imports inside functions too (a lazy import that
closes a cycle is still a cycle in the design; TYPE_CHECKING imports are
not imports).  A failure prints the modules of each cycle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"shmrt": ROOT / "shmrt", "shmrt.workers": ROOT / "workers",
            "shmrt.tools": ROOT / "tools"}
SKIP_DIRS = {"__pycache__", "_core", "harness", "relacy"}


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {"shmrt._core": ROOT / "shmrt" / "_core.pyi"}  # a leaf
    for pkg, base in PACKAGES.items():
        for path in base.rglob("*.py"):
            if SKIP_DIRS & set(path.relative_to(base).parts):
                continue
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join([pkg, *parts])] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The shmrt modules ``name`` imports, at any level but TYPE_CHECKING."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            subs = {f"{base}.{a.name}" for a in node.names} & mods.keys()
            found.update(subs or {base})
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in mods and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_no_import_cycles() -> None:
    mods = _modules()
    graph = {m: (_imports(m, p, mods) if p.suffix == ".py" else set()) for m, p in mods.items()}
    assert len(graph) > 40  # the walk found the package
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_library_does_not_import_tools() -> None:
    mods = _modules()
    for m, p in mods.items():
        if p.suffix == ".py" and not m.startswith(("shmrt.tools", "shmrt.cli")):
            tools = {i for i in _imports(m, p, mods) if i.startswith("shmrt.tools")}
            assert not tools, f"{m} imports {sorted(tools)}"


# ---- the C units form layers too (core.h lists them) ------------------------------------------
CORE = ROOT / "shmrt" / "_core"
# a unit's API header and its layer; a .c may include headers of lower layers only
C_LAYERS = {"core.h": 0, "arena.h": 1, "slots.h": 2, "scheduler.h": 3, "relay.h": 4,
            "udp.h": 5, "methods.h": 6}
C_UNIT_LAYER = {"segment.c": 0, "broken.c": 0, "crash.c": 0, "arena.c": 1, "slots.c": 2,
                "sched.c": 3, "task.c": 4, "relay.c": 4, "admin.c": 4, "kill.c": 4,
                "reclaim.c": 4, "udp.c": 5, "udp_send.c": 5, "module.c": 7}
C_OWN = {"segment.c": "core.h", "broken.c": "core.h", "crash.c": "core.h", "arena.c": "arena.h",
         "slots.c": "slots.h", "sched.c": "scheduler.h", "relay.c": "relay.h",
         "udp.c": "udp.h", "udp_send.c": "udp.h", "module.c": "methods.h"}


def _c_includes(path: Path) -> set[str]:
    import re

    return set(re.findall(r'^#include "([^"]+)"', path.read_text(), re.M))


def test_every_c_unit_has_a_layer() -> None:
    units = {p.name for p in CORE.glob("*.c")}
    assert units == set(C_UNIT_LAYER), f"new or gone C units: map them here and in core.h: {units}"


def test_c_units_include_only_lower_layers() -> None:
    bad = []
    for unit, layer in C_UNIT_LAYER.items():
        for h in _c_includes(CORE / unit) & set(C_LAYERS):
            if h != C_OWN.get(unit) and C_LAYERS[h] >= layer:
                bad.append(f"{unit} (layer {layer}) includes {h} (layer {C_LAYERS[h]})")
    assert not bad, bad


def test_no_hand_written_prototypes_in_c_files() -> None:
    """Cross-file API is declared in the owning unit's header, never by hand
    in a .c file (where it can drift from the definition unnoticed)."""
    import re

    proto = re.compile(r"^(?!static|typedef|extern|return|#)[A-Za-z_][\w \*]*\b\w+\([^;{]*\);\s*$",
                       re.M)
    found = {p.name: proto.findall(p.read_text()) for p in CORE.glob("*.c")}
    assert not {k: v for k, v in found.items() if v}, found
