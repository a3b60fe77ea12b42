"""Both frameworks in one process: Django configured as the Django tests configure it.

Each test drives the Flask extension (a real ``Flask`` app and ``init_app``)
and the Django app (``override_settings(PQLSDK=...)`` and the system check)
through a ``Host`` that hides only how each spells and reads its options.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

django = pytest.importorskip("django")
pytest.importorskip("flask")

from django.conf import settings  # noqa: E402
from django.core import checks  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from flask import Flask  # noqa: E402

import pqlsdk  # noqa: E402
from pqlsdk.integrations.django import client as django_client  # noqa: E402
from pqlsdk.integrations.django._settings import config as django_config  # noqa: E402
from pqlsdk.integrations.django.apps import check_settings  # noqa: E402
from pqlsdk.integrations.flask import PQLSDK  # noqa: E402
from tests.integrations_django import project  # noqa: E402

if not settings.configured:  # pragma: no branch - configured here unless the Django tests ran first
    settings.configure(**project.settings(Path(tempfile.mkdtemp(prefix="pqlsdk-options-"))))
    django.setup()

PLAYBOOK = project.PLAYBOOK


class Host:
    """One framework's way to take options: by bare name (``STORE``) in, errors and client out."""

    name: str

    def __init__(self, tmp_path: Path) -> None:
        self.base = tmp_path / "instance"
        self.stack = ExitStack()

    def spell(self, name: str) -> str:
        raise NotImplementedError

    def errors(self, options: dict[str, Any]) -> str:
        """The ``ConfigError`` the host sees for ``options`` (every problem, one message)."""
        raise NotImplementedError

    def read(self, options: dict[str, Any]) -> dict[str, Any]:
        """Set the integration up with ``options``; return the values it read, by bare name."""
        raise NotImplementedError

    def client(self) -> pqlsdk.Client:
        """The client the integration builds from what ``read`` set up."""
        raise NotImplementedError


class FlaskHost(Host):
    name = "flask"

    def spell(self, name: str) -> str:
        return f"PQLSDK_{name}"

    def _app(self, options: dict[str, Any]) -> Flask:
        app = Flask("options", instance_path=str(self.base))
        app.config.update(SECRET_KEY="tests-only-not-secret")
        app.config.update({self.spell(key): value for key, value in options.items()})
        return app

    def errors(self, options: dict[str, Any]) -> str:
        with pytest.raises(pqlsdk.ConfigError) as caught:
            PQLSDK(self._app(options))
        return str(caught.value)

    def read(self, options: dict[str, Any]) -> dict[str, Any]:
        self.app = self._app(options)
        self.ext = PQLSDK(self.app)
        self.stack.callback(self.ext.close, self.app)
        values: dict[str, Any] = self.app.extensions["pqlsdk"].settings.options.values
        return values

    def client(self) -> pqlsdk.Client:
        with self.app.app_context():
            return self.ext.client


class DjangoHost(Host):
    name = "django"

    def spell(self, name: str) -> str:
        return f"PQLSDK[{name!r}]"

    def errors(self, options: dict[str, Any]) -> str:
        with override_settings(PQLSDK=options, BASE_DIR=self.base):
            found = [m.msg for m in check_settings() if m.level >= checks.ERROR]
            with pytest.raises(pqlsdk.ConfigError):
                django_client()
        return "; ".join(found)

    def read(self, options: dict[str, Any]) -> dict[str, Any]:
        self.stack.enter_context(override_settings(PQLSDK=options, BASE_DIR=self.base))
        return django_config().options.values

    def client(self) -> pqlsdk.Client:
        return django_client()


HOSTS: dict[str, type[Host]] = {"flask": FlaskHost, "django": DjangoHost}


@pytest.fixture(params=list(HOSTS))
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    """Each framework in turn; whatever a test set up is closed after it."""
    made = HOSTS[request.param](tmp_path)
    with made.stack:
        yield made


@pytest.fixture
def framework(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    """The framework a test names in its own parameters (``framework=...``), closed after it."""
    made = HOSTS[request.param](tmp_path)
    with made.stack:
        yield made
