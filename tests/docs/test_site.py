"""The documentation site builds with ``mkdocs build --strict``, and documents every public name.

The build runs once per session into a temporary directory (``site/`` is never
written): a broken link, a missing include (``check_paths``) or a reference
mkdocstrings cannot resolve is a warning, and ``--strict`` makes it a failure.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pqlsdk

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")
from mkdocstrings import Inventory

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = Path(sys.executable).with_name("mkdocs")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


def test_every_public_name_is_in_the_api_reference(site: Path) -> None:
    with (site / "objects.inv").open("rb") as file:
        inventory = Inventory.parse_sphinx(file)
    missing = [name for name in pqlsdk.__all__ if f"pqlsdk.{name}" not in inventory]
    assert missing == []


def test_every_public_name_has_an_anchor_on_the_api_page(site: Path) -> None:
    page = (site / "reference" / "pqlsdk" / "index.html").read_text()
    missing = [name for name in pqlsdk.__all__ if f'id="pqlsdk.{name}"' not in page]
    assert missing == []


def test_the_site_loads_nothing_from_other_hosts(site: Path) -> None:
    """``font: false``: no Google Fonts, no CDN; the site works offline and leaks nothing."""
    for page in site.rglob("*.html"):
        text = page.read_text()
        for host in ("fonts.googleapis.com", "fonts.gstatic.com", "cdn.jsdelivr.net", "unpkg.com"):
            assert host not in text, f"{page.relative_to(site)} loads from {host}"


def test_included_samples_are_rendered_not_their_include_lines(site: Path) -> None:
    page = (site / "quickstart" / "index.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))  # highlighting splits code into spans
    assert "--8<--" not in text
    assert 'gate = client.gate(user_id, "sso")' in text
