"""The layers of pqlsdk: which modules form each, and which layers each may import.

One table read by two tests: ``tests/test_layers.py`` checks the imports of every
module of ``src/pqlsdk`` against it, and ``tests/docs/test_architecture.py`` checks
that the diagram on the architecture page is this table, drawn. A new module must
be placed here (the test fails for a module no layer claims), so the page cannot
silently fall behind the code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Final

SRC: Final = Path(__file__).resolve().parents[1] / "src"

# Layer -> the module names (or package prefixes, ending in ".") that form it. A module
# belongs to the layer of its longest matching entry, so a bridge module can sit in
# another layer than its package (``warehouse._replay`` is replay's SQL engine).
MEMBERS: Final[dict[str, tuple[str, ...]]] = {
    "base": (
        "pqlsdk._exceptions",
        "pqlsdk._clock",
        "pqlsdk._version",
        "pqlsdk._stats",
        "pqlsdk._ids",
        "pqlsdk._digests",
        "pqlsdk._formats",
        "pqlsdk._lifecycle",
        "pqlsdk._liveness",
        "pqlsdk._pacing",
        "pqlsdk._retry",
    ),
    "messages": ("pqlsdk.messages", "pqlsdk._aggregates"),
    "stores": ("pqlsdk.stores.", "pqlsdk._history"),
    "rules": ("pqlsdk.rules.",),
    "scoring": ("pqlsdk._scoring", "pqlsdk._models"),
    "moments": ("pqlsdk._moments", "pqlsdk._due", "pqlsdk._gating", "pqlsdk._tiers"),
    "delivery": (
        "pqlsdk.transports.",
        "pqlsdk._delivery.",
    ),
    "warehouse": ("pqlsdk.warehouse.",),
    "client": (
        "pqlsdk",
        "pqlsdk._client",
        "pqlsdk._options",
        "pqlsdk._faults",
        "pqlsdk._answers",
        "pqlsdk._recording",
        "pqlsdk._flushing",
        "pqlsdk._intake",
        "pqlsdk._journal",
        "pqlsdk._memo",
        "pqlsdk.testing",
    ),
    "replay": ("pqlsdk.replay.", "pqlsdk.warehouse._replay"),
    "lift": ("pqlsdk.lift.", "pqlsdk.warehouse._moments"),
    "integrations": ("pqlsdk.integrations.",),
    "collector": ("pqlsdk.collector.",),
    "cli": (
        "pqlsdk.cli",
        "pqlsdk.__main__",
        "pqlsdk._score_cli",
        "pqlsdk._score_table",
        "pqlsdk.collector._cli",
        "pqlsdk.lift._cli",
        "pqlsdk.lift._sources",
        "pqlsdk.replay._cli",
    ),
}

# Layer -> the layers it imports directly; what those import, it may import too.
# Drawn, in this order, on docs/architecture.md.
IMPORTS: Final[dict[str, tuple[str, ...]]] = {
    "cli": ("collector", "lift", "replay"),
    "collector": ("client", "lift"),
    "integrations": ("client",),
    "lift": ("replay", "moments"),
    "replay": ("warehouse",),
    "client": ("moments", "delivery"),
    "warehouse": ("scoring",),
    "moments": ("scoring",),
    "delivery": ("stores",),
    "scoring": ("rules", "stores"),
    "rules": ("messages",),
    "stores": ("messages",),
    "messages": ("base",),
    "base": (),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(path): path for path in sorted((SRC / "pqlsdk").rglob("*.py"))}


def layer_of(module: str) -> str | None:
    """The layer whose longest entry matches ``module``; None when no layer claims it."""
    best: tuple[int, str] | None = None
    for layer, entries in MEMBERS.items():
        for entry in entries:
            package = entry.endswith(".")
            matches = module == entry.rstrip(".") or (package and module.startswith(entry))
            if matches and (best is None or len(entry) > best[0]):
                best = (len(entry), layer)
    return None if best is None else best[1]


def allowed(layer: str) -> set[str]:
    """The layers ``layer`` may import: itself and every layer below it."""
    seen = {layer}
    todo = [layer]
    while todo:
        for below in IMPORTS[todo.pop()]:
            if below not in seen:
                seen.add(below)
                todo.append(below)
    return seen


def imported_names(module: str) -> Iterator[tuple[str, str]]:
    """Each ``(source, name)`` that ``module`` imports anywhere in its body (functions
    and ``TYPE_CHECKING`` blocks included), relative imports resolved; ``import x.y``
    gives ``("x.y", "")``.
    """
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, "") for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            yield from ((source, alias.name) for alias in node.names)


def imports(module: str) -> set[str]:
    """The pqlsdk modules ``module`` imports anywhere in its body: a deferred import is
    still a dependency.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module,
    else ``pkg``.
    """
    found = set()
    for source, name in imported_names(module):
        sub = f"{source}.{name}"
        found.add(sub if sub in modules() else source)
    return found & set(modules())
