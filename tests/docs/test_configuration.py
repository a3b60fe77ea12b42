"""docs/configuration.md's table of the Flask and Django options is the one the code reads.

The table is generated from ``pqlsdk.integrations._options.OPTIONS``: run
``python -m tests.docs.test_configuration`` to redraw it after a change, and
read the diff.
"""

from __future__ import annotations

import re
from pathlib import Path

from pqlsdk.integrations._options import OPTIONS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
BLOCK = re.compile(r"(<!-- options:[^\n]*-->\n)(.*?)(<!-- end options -->)", re.DOTALL)


def render_options() -> str:
    """One row an option: its key in each framework, its ``Client`` keyword, what it takes."""
    rows = [
        "| Flask `app.config` | Django `settings.PQLSDK` | `Client` keyword | accepts | default "
        "| meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for option in OPTIONS:
        flask = f"`PQLSDK_{option.name}`" if "flask" in option.frameworks else "-"
        django = f'`"{option.name}"`' if "django" in option.frameworks else "-"
        keyword = f"`{option.keyword}`" if option.keyword else "-"
        rows.append(
            f"| {flask} | {django} | {keyword} | {option.accepts} | {option.default} "
            f"| {option.meaning} |"
        )
    return "\n".join(rows) + "\n"


def _block() -> str:
    found = BLOCK.search(PAGE.read_text())
    assert found is not None, "the page lost its <!-- options: --> block"
    return found[2]


def test_the_options_table_is_the_one_the_integrations_read() -> None:
    assert _block() == render_options()


def test_every_option_has_a_row() -> None:
    assert len(_block().splitlines()) == len(OPTIONS) + 2


def _redraw() -> None:
    """Rewrite the generated block of the page in place."""
    PAGE.write_text(BLOCK.sub(lambda m: m[1] + render_options() + m[3], PAGE.read_text()))


if __name__ == "__main__":
    _redraw()
