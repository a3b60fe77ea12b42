"""settings.PQLSDK: the system checks, and the client built from the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test.utils import override_settings

import pqlsdk
from pqlsdk.integrations.django import client, close
from pqlsdk.integrations.django.apps import check_settings

from .project import PLAYBOOK


def ids(value: dict[str, Any]) -> list[str]:
    with override_settings(PQLSDK=value):
        return [message.id for message in check_settings()]


def messages(value: dict[str, Any]) -> list[str]:
    with override_settings(PQLSDK=value):
        return [message.msg for message in check_settings()]


def not_callable() -> None:
    """A module attribute that USER may name (it is callable)."""


NOT_CALLABLE = 42


def test_good_settings_pass() -> None:
    assert ids({"RULES": PLAYBOOK, "STORE": "memory://", "USER": f"{__name__}.not_callable"}) == []


def test_the_checks_run_with_django_checks() -> None:
    with override_settings(PQLSDK={"STORE": "memory://"}):
        found = [message.id for message in run_checks()]
    assert "pqlsdk.E005" in found


def test_manage_py_check_fails_on_a_broken_setting() -> None:
    with (
        override_settings(PQLSDK={"RULES": PLAYBOOK, "COLOUR": "red"}),
        pytest.raises(SystemCheckError, match=r"pqlsdk\.E003"),
    ):
        call_command("check")


def test_missing_setting() -> None:
    with override_settings():
        del settings.PQLSDK
        assert [message.id for message in check_settings()] == ["pqlsdk.E001"]


def test_setting_not_a_dict() -> None:
    assert ids(["RULES"]) == ["pqlsdk.E002"]  # type: ignore[arg-type]


def test_unknown_keys_are_named_with_the_nearest_known_key() -> None:
    assert messages({"RULES": PLAYBOOK, "RULE": "x", "STROE": "y"}) == [
        "PQLSDK['RULE'] is not an option (did you mean PQLSDK['RULES']?)",
        "PQLSDK['STROE'] is not an option (did you mean PQLSDK['STORE']?)",
    ]


def test_rules_are_required() -> None:
    assert ids({"STORE": "memory://"}) == ["pqlsdk.E005"]


def test_rules_must_be_a_file(tmp_path: Path) -> None:
    assert messages({"RULES": tmp_path}) == [f"PQLSDK['RULES']: {str(tmp_path)!r} is not a file"]


def test_broken_rules_report_file_line_and_column(tmp_path: Path) -> None:
    broken = tmp_path / "rules.toml"
    broken.write_text("[model.m]\ntiers = { cold = 0 }\ngate = 'count(\"x\") >='\n")
    (found,) = messages({"RULES": broken})
    assert found.startswith(f"PQLSDK['RULES'] does not load: {broken}:3:")
    assert "^" in found  # the caret under the spot


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("tests.integrations_django.nowhere.user", "cannot import"),
        (f"{__name__}.NOT_CALLABLE", "is not callable"),
    ],
)
def test_user_must_be_an_importable_callable(given: str, says: str) -> None:
    for key in ("USER", "ACCOUNT"):
        (found,) = messages({"RULES": PLAYBOOK, key: given})
        assert found.startswith(f"PQLSDK[{key!r}]: ")
        assert says in found


def test_write_key_needs_an_endpoint() -> None:
    assert ids({"RULES": PLAYBOOK, "WRITE_KEY": "k"}) == ["pqlsdk.E009"]


def test_rules_without_gates_or_moments_warn(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        "[model.m]\ntiers = { cold = 0 }\n"
        "signals = { a = { when = 'count(\"a\") >= 1', points = 1 } }\n"
    )
    value = {"RULES": rules, "STORE": f"sqlite:///{tmp_path}/w.db"}
    assert ids(value) == ["pqlsdk.W001", "pqlsdk.W002"]
    with override_settings(PQLSDK=value):
        assert client().rules is not None  # warnings do not stop the client


def test_client_refuses_a_broken_setting_with_every_error() -> None:
    with (
        override_settings(PQLSDK={"RULE": PLAYBOOK}),
        pytest.raises(
            pqlsdk.ConfigError, match=r"pqlsdk\.E003: PQLSDK\['RULE'\] is not .*; pqlsdk\.E005: "
        ),
    ):
        client()


def test_client_opens_on_first_use_and_is_kept(tmp_path: Path) -> None:
    store = tmp_path / "lazy.db"
    with override_settings(PQLSDK={"RULES": PLAYBOOK, "STORE": f"sqlite:///{store}"}):
        assert not store.exists()
        first = client()
        assert store.exists()
        assert client() is first


def test_a_changed_setting_closes_the_old_client(tmp_path: Path) -> None:
    first = client()
    with override_settings(PQLSDK={"RULES": PLAYBOOK, "STORE": "memory://"}):
        assert client() is not first
    with pytest.raises(pqlsdk.ClosedError):
        first.track("u", "e")


def test_default_store_is_beside_base_dir(tmp_path: Path) -> None:
    with override_settings(BASE_DIR=tmp_path, PQLSDK={"RULES": PLAYBOOK}):
        assert client().store.url == f"sqlite:///{tmp_path / 'pqlsdk.db'}"


def test_default_store_without_base_dir_is_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with override_settings(PQLSDK={"RULES": PLAYBOOK}):
        del settings.BASE_DIR
        assert client().store.url == f"sqlite:///{tmp_path / 'pqlsdk.db'}"


def test_close_without_a_client_is_harmless() -> None:
    close()
    close()
