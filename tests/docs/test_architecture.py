"""docs/architecture.md stays true: its modules exist, its layers are the tested ones,
and its error tree is every error class pqlsdk defines.

The layer diagram and the error tree are generated: run
``python -m tests.docs.test_architecture`` to redraw both after a change, and
read the diff.
"""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

from tests.layers import IMPORTS, SRC, layer_of

PAGE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
BLOCK = re.compile(r"(<!-- (\w+):[^\n]*-->\n```text\n)(.*?)(```\n<!-- end \2 -->)", re.DOTALL)
ROW = re.compile(r"^\| (\w+) \| (.*?) \|", re.MULTILINE)
PATH = re.compile(r"`(pqlsdk/[\w/.]*)`")


def render_layers() -> str:
    """Each layer and the layers it imports, top first, arrows aligned."""
    width = max(map(len, IMPORTS))
    return "".join(
        f"{layer:<{width}}  -> {', '.join(below)}\n" if below else f"{layer}\n"
        for layer, below in IMPORTS.items()
    )


def _error_classes() -> dict[str, tuple[list[str], str, str]]:
    """Name -> (bases, first docstring line, defining module) of every class in src/pqlsdk."""
    found: dict[str, tuple[list[str], str, str]] = {}
    for path in sorted((SRC / "pqlsdk").rglob("*.py")):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [base.id for base in node.bases if isinstance(base, ast.Name)]
                summary = (ast.get_docstring(node) or "").split("\n")[0].rstrip(".")
                assert node.name not in found or not bases, f"two classes named {node.name}"
                found[node.name] = (bases, summary.replace("``", ""), module)
    return found


def render_errors() -> str:
    """``PQLError`` and its subclasses as a tree: builtin bases, where, what."""
    import pqlsdk  # noqa: PLC0415 - only for __all__

    classes = _error_classes()
    children: dict[str, list[str]] = {}
    for name, (bases, _, _) in classes.items():
        for base in bases:
            if base in classes:
                children.setdefault(base, []).append(name)
    lines: list[tuple[str, str]] = []

    def walk(name: str, prefix: str, branch: str) -> None:
        bases, summary, module = classes[name]
        extra = [base for base in bases if isinstance(getattr(builtins, base, None), type)]
        label = branch + name + (f" ({', '.join(extra)})" if extra else "")
        where = "" if name in pqlsdk.__all__ else f"[{module}] "
        lines.append((label, where + summary))
        kids = sorted(children.get(name, []))
        for index, kid in enumerate(kids):
            last = index == len(kids) - 1
            walk(kid, prefix + ("    " if last else "│   "), prefix + ("└── " if last else "├── "))

    walk("PQLError", "", "")
    width = max(len(label) for label, _ in lines)
    return "".join(f"{label:<{width}}  {text}\n" for label, text in lines)


def _blocks() -> dict[str, str]:
    return {match[2]: match[3] for match in BLOCK.finditer(PAGE.read_text())}


def test_the_layer_diagram_is_the_tested_one() -> None:
    assert _blocks()["layers"] == render_layers()


def test_the_error_tree_is_every_error_class() -> None:
    assert _blocks()["errors"] == render_errors()


def test_the_error_tree_shows_errors_defined_outside_the_exceptions_module() -> None:
    tree = render_errors()
    assert "ClosedError (RuntimeError)" in tree
    assert "StoreUnavailableError" in tree


def test_every_module_the_page_names_exists() -> None:
    named = PATH.findall(PAGE.read_text())
    assert named
    assert [name for name in named if not (SRC / name).exists()] == []


def test_every_module_in_the_table_is_in_its_row_s_layer() -> None:
    wrong = []
    rows = [row for row in ROW.findall(PAGE.read_text()) if row[0] != "layer"]
    for layer, modules in rows:
        for name in PATH.findall(modules):
            dotted = name.removesuffix("/").removesuffix(".py").replace("/", ".")
            dotted = dotted.removesuffix(".__init__")
            if layer_of(dotted) != layer:
                wrong.append(f"{name}: page says {layer}, tests/layers.py {layer_of(dotted)}")
    assert wrong == []
    assert {layer for layer, _ in rows} == set(IMPORTS)


def _redraw() -> None:
    """Rewrite both generated blocks of the page in place."""
    fresh = {"layers": render_layers(), "errors": render_errors()}
    text = BLOCK.sub(lambda m: m[1] + fresh[m[2]] + m[4], PAGE.read_text())
    PAGE.write_text(text)


if __name__ == "__main__":
    _redraw()
