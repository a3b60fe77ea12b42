"""The feed's HTML pages: Jinja2 templates shipped in the package, always autoescaped.

Ids, labels and feature names on the feed come from tracked data, so every
value is escaped by the template engine, not by hand: one missed call would be
an injection. ``templates`` (Starlette's ``Jinja2Templates``) serves the pages
from the app; ``render`` gives the same HTML without a request, for tests and
for anyone embedding the feed elsewhere. The filters here are the feed's few
ways of writing a value: a score, a duration, a route.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import jinja2
from starlette.templating import Jinja2Templates

from .._scoring import show

__all__ = ["TEMPLATES", "render", "span", "templates"]

TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
"""The templates' directory, inside the package (the wheel ships it)."""


def span(delta: timedelta) -> str:
    """Write a short human duration: 45m, 3h 10m, 2d 4h."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"


def _words(name: object) -> str:
    """Write an identifier the way a person reads it: account_executive -> account executive."""
    return str(name).replace("_", " ")


_environment: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its name: nothing is ever unescaped
    undefined=jinja2.StrictUndefined,  # a misspelt name fails the tests, not the page
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters.update(show=show, span=span, words=_words)

templates: Final = Jinja2Templates(env=_environment)
"""The collector's pages, for ``templates.TemplateResponse(request, name, context)``."""


def render(name: str, **context: Any) -> str:
    """Render template ``name`` with ``context`` (escaped) to a string."""
    return _environment.get_template(name).render(**context)
