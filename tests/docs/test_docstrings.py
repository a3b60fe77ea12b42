"""Every public name has a docstring that ends with the version that added it.

Public names are the ``__all__`` of ``pqlsdk`` and of every public module (no
component of its dotted path starts with ``_``) that defines one, plus the
public methods and properties that public classes define themselves: what the
API pages render (``filters: public`` in mkdocs.yml). The package is read the
way the API reference reads it (griffe, the library behind mkdocstrings), so
module constants and type aliases, whose docstring is the string literal below
the assignment, count too.

The version line is the docstring's last paragraph, exactly
``Added in version X.Y.Z.`` (``grep -rn "Added in version" src`` lists them),
and names no version later than the one being developed. Docstrings are
Markdown, as mkdocstrings renders them: code goes in fenced blocks, never after
a reST ``::``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import pqlsdk

# griffe comes with mkdocstrings, which reads docstrings with it.
if TYPE_CHECKING:
    import griffe
else:
    griffe = pytest.importorskip("griffe")

# The site as test_site builds it (once per module, in a temporary directory).
from tests.docs.test_site import ROOT, site  # noqa: F401  (site: a fixture)

VERSION_LINE = re.compile(r"Added in version (\d+)\.(\d+)\.(\d+)\.")
CURRENT = tuple(int(part) for part in re.findall(r"\d+", pqlsdk.__version__)[:3])

# Docstrings being edited in parallel (src/pqlsdk/_client.py and src/pqlsdk/stores/);
# remove each name when its docstring ends with the version line (and has no "::").
# An entry exempts its name and every name under it: "pqlsdk.stores.redis" covers the
# names that module gains while it is being rewritten.
PENDING: set[str] = set()  # empty: every public name has its version line


def _package() -> griffe.Module:
    package = griffe.load("pqlsdk", search_paths=[str(ROOT / "src")])
    assert isinstance(package, griffe.Module)
    return package


def _public_modules(module: griffe.Module) -> Iterator[griffe.Module]:
    yield module
    for name, member in module.members.items():
        if not name.startswith("_") and isinstance(member, griffe.Module):
            yield from _public_modules(member)


def _own_public_members(cls: griffe.Class) -> Iterator[tuple[str, griffe.Object]]:
    """Methods and properties the class defines (not inherited, not aliases).

    A special method with a docstring (``__call__`` of a middleware) is on the
    API page too (``filters: public``); ``__init__`` is merged into the class.
    """
    for name, member in cls.members.items():
        special = name.startswith("__") and name.endswith("__") and name != "__init__"
        if isinstance(member, griffe.Alias) or (
            name.startswith("_") and not (special and member.docstring)
        ):
            continue
        if member.is_function or (member.is_attribute and "property" in member.labels):
            yield name, member


def public_objects() -> dict[str, griffe.Object]:
    """Every public name, by the public path a reader finds it under first."""
    seen: dict[str, str] = {}  # canonical path -> public path
    found: dict[str, griffe.Object] = {}
    for module in _public_modules(_package()):
        for name in module.exports or ():
            assert isinstance(name, str)  # __all__ is a list of literals
            target = module[name]
            target = target.final_target if target.is_alias else target
            if target.path in seen:
                continue
            public = f"{module.path}.{name}"
            seen[target.path] = public
            found[public] = target
            if target.is_class:
                for member_name, member in _own_public_members(target):
                    found[f"{public}.{member_name}"] = member
    return found


PUBLIC = public_objects()


def problems(obj: griffe.Object) -> list[str]:
    if obj.docstring is None or not obj.docstring.value.strip():
        return ["no docstring"]
    text = obj.docstring.value
    found = []
    last = text.strip().split("\n\n")[-1].strip()
    match = VERSION_LINE.fullmatch(last)
    if match is None:
        found.append("last paragraph is not 'Added in version X.Y.Z.'")
    elif tuple(int(part) for part in match.groups()) > CURRENT:
        found.append(f"{last!r} is later than {pqlsdk.__version__}")
    if any(line.rstrip().endswith("::") for line in text.splitlines()):
        found.append("reST '::' literal block: use a fenced code block")
    return found


def test_the_walk_finds_the_public_names() -> None:
    """A walk that found nothing would pass anything."""
    for name in pqlsdk.__all__:
        assert f"pqlsdk.{name}" in PUBLIC
    for name in (
        "pqlsdk.testing.RecordingTransport",
        "pqlsdk.integrations.flask.PQLSDK.init_app",
        "pqlsdk.integrations.openfeature.PQLProvider.get_metadata",
        "pqlsdk.replay.replay",
    ):
        assert name in PUBLIC


def pending(path: str) -> bool:
    return any(path == name or path.startswith(f"{name}.") for name in PENDING)


def test_every_public_name_ends_with_the_version_that_added_it() -> None:
    failing = {
        path: found
        for path, obj in PUBLIC.items()
        if not pending(path) and (found := problems(obj))
    }
    assert failing == {}, "\n".join(f"{path}: {'; '.join(p)}" for path, p in failing.items())


def test_pending_names_are_public_names() -> None:
    """A misspelt name in PENDING would exempt nothing; catch it."""
    modules = {module.path for module in _public_modules(_package())}
    assert PENDING - PUBLIC.keys() - modules == set()


def test_module_docstrings_have_no_rest_literal_blocks() -> None:
    """Module docstrings open their API page; ``Usage::`` would show as text."""
    failing = [
        module.path
        for module in _public_modules(_package())
        if not pending(module.path)
        and module.docstring is not None
        and any(line.rstrip().endswith("::") for line in module.docstring.value.splitlines())
    ]
    assert failing == []


def test_api_pages_render_code_blocks_not_markup(site: Path) -> None:  # noqa: F811
    """Fenced blocks become highlighted code: no ``` and no reST ``::`` left as text."""
    allowed = {("pqlsdk", "Usage::")} if "pqlsdk.Client" in PENDING else set()
    stray = set()
    for page in sorted((site / "reference").glob("*/index.html")):
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        for line in text.splitlines():
            if "```" in line or line.rstrip().endswith("::"):
                stray.add((page.parent.name, line.strip()))
    assert stray <= allowed
