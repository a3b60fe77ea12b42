"""Installing, as the pages say it: from a clone or a git URL until pqlsdk is on PyPI.

``pip install 'pqlsdk[flask]'`` fails for a newcomer (there is no such
distribution on the registry yet), so no page may give it as a command; the
docs' home page says once why, and how instead.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# pip install pqlsdk / 'pqlsdk[flask]', not followed by "@ git+..." (a direct reference).
FROM_THE_REGISTRY = re.compile(r"""pip install\s+['"]?pqlsdk(\[[^\]]*\])?['"]?(?!\s*@)(\s|`|$)""")


def _pages() -> list[Path]:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").rglob("*.md")),
        *sorted((ROOT / "examples").rglob("*.md")),
    ]


def test_no_page_installs_pqlsdk_from_the_registry() -> None:
    """README, docs and the examples' READMEs install from a clone, a path or a git URL."""
    found = [
        f"{page.relative_to(ROOT)}: {match.group(0).strip()}"
        for page in _pages()
        for match in FROM_THE_REGISTRY.finditer(page.read_text())
    ]
    assert found == []


def test_the_docs_say_once_that_pqlsdk_is_not_on_pypi() -> None:
    """docs/index.md's Install section says it, with the clone and git URL commands."""
    index = (ROOT / "docs" / "index.md").read_text()
    install = index.split("## Install", 1)[1].split("\n## ", 1)[0]
    assert "pqlsdk is not on PyPI yet" in install
    assert "pip install -e '.[flask]'" in install
    assert "pip install 'pqlsdk[flask] @ git+https://" in install
    saying = [p for p in (ROOT / "docs").rglob("*.md") if "not on PyPI yet" in p.read_text()]
    assert sorted(p.name for p in saying) == ["index.md", "quickstart.md"]  # quickstart links it
