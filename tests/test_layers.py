"""Imports point down the layers of ``tests/layers.py`` (drawn on docs/architecture.md).

Every import counts, including those inside functions and ``TYPE_CHECKING`` blocks:
a deferred import still makes the lower layer depend on the higher one.
"""

from __future__ import annotations

from tests.layers import IMPORTS, MEMBERS, allowed, imported_names, imports, layer_of, modules

# (importer, imported) pairs that break the layers today, each with the reason it stays.
# Empty: add one only with the issue that will remove it.
EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()


def test_every_module_belongs_to_a_layer() -> None:
    assert [name for name in modules() if layer_of(name) is None] == []


def test_every_layer_entry_names_a_module() -> None:
    names = set(modules())
    stale = [e for entries in MEMBERS.values() for e in entries if e.rstrip(".") not in names]
    assert stale == []


def test_the_layers_form_no_cycle() -> None:
    cyclic = [layer for layer in IMPORTS for below in IMPORTS[layer] if layer in allowed(below)]
    assert cyclic == []


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for name in modules():
        layer = layer_of(name)
        assert layer is not None
        ok = allowed(layer)
        for target in sorted(imports(name)):
            target_layer = layer_of(target)
            if target_layer not in ok and (name, target) not in EXCEPTIONS:
                upward.append(f"{name} ({layer}) imports {target} ({target_layer})")
    assert upward == []


def test_every_drawn_arrow_is_an_import() -> None:
    """An arrow on the diagram that no import follows would be a dependency that is not there."""
    used = {(layer_of(name), layer_of(target)) for name in modules() for target in imports(name)}
    unused = [
        f"{layer} -> {below}"
        for layer, belows in IMPORTS.items()
        for below in belows
        if (layer, below) not in used
    ]
    assert unused == []


# (importer, module, name): private names reached across packages today. Issue 22 asks
# only the collector's to go (done); these remain, each a name to make shared or move.
PRIVATE_EXCEPTIONS: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("pqlsdk.lift._sources", "pqlsdk.replay._run", "_time_order"),
        ("pqlsdk.warehouse._model_steps", "pqlsdk._scoring", "_measured_sides"),
        ("pqlsdk.warehouse._model_steps", "pqlsdk.rules._loader", "_decode"),
        ("pqlsdk.warehouse._duckdb", "pqlsdk._history", "_is_message"),
    }
)


def _package(name: str) -> str:
    """``pqlsdk.collector`` for ``pqlsdk.collector._app``; ``pqlsdk`` for ``pqlsdk._client``."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or name in _PACKAGES else "pqlsdk"


_PACKAGES = {name for name, path in modules().items() if path.name == "__init__.py"}


def test_no_module_imports_another_package_s_private_names() -> None:
    """A ``_name`` is its package's business: another package gets a public or shared one."""
    reached = [
        f"{name} imports {source}.{imported}"
        for name in modules()
        for source, imported in imported_names(name)
        if imported.startswith("_")
        and not imported.startswith("__")
        and f"{source}.{imported}" not in modules()
        and _package(source) != _package(name)
        and (name, source, imported) not in PRIVATE_EXCEPTIONS
    ]
    assert reached == []
