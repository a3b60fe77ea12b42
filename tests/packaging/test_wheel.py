"""What a user installs: the sdist and wheel ``python -m build`` makes, not this checkout.

The wheel is built from the sdist (``build``'s default), so a file missing from
either shows. It is installed with the ``flask`` extra into a fresh virtual env
by following the quickstart word for word in a folder outside the checkout,
where the checkout cannot be imported; then the installed package must hold
every file of ``src/pqlsdk`` (``py.typed``, the templates), render the Flask
integration's pages, and answer on its ``pqlsdk`` console script.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ..conftest import ROOT
from ..docs.test_quickstart import follow_quickstart
from ..processes import untraced_env

pytestmark = pytest.mark.slow

SOURCE = ROOT / "src" / "pqlsdk"


def _run(args: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command outside the checkout, untraced; fail with its output if it fails."""
    env = untraced_env()
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel built from it, as ``python -m build`` makes them."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", out, ROOT], cwd=out)
    return out


@pytest.fixture(scope="module")
def app(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside the checkout where the quickstart ran with the wheel (its .venv in it)."""
    (wheel,) = dist.glob("*.whl")
    folder = tmp_path_factory.mktemp("quickstart")
    assert not folder.is_relative_to(ROOT)
    follow_quickstart(folder, str(wheel))
    return folder


def test_build_makes_an_sdist_and_a_wheel_that_twine_accepts(dist: Path) -> None:
    """One sdist and one wheel, both passing ``twine check --strict`` (metadata, README)."""
    made = sorted(path.name for path in dist.iterdir())
    assert sorted(name.rsplit(".", 1)[-1] for name in made) == ["gz", "whl"], made
    done = _run([sys.executable, "-m", "twine", "check", "--strict", *dist.iterdir()], cwd=dist)
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_the_quickstart_shows_its_moment_from_the_wheel(app: Path) -> None:
    """The page followed word for word with the wheel: 403 and the moment's title (in ``app``)."""
    assert (app / "pqlsdk.db").is_file()  # the quickstart's client wrote its store there


def test_the_installed_package_is_the_wheel_with_every_source_file(app: Path) -> None:
    """pqlsdk imports from the venv, not the checkout, and holds each file of src/pqlsdk."""
    where = _run([app / ".venv/bin/python", "-c", "import pqlsdk; print(pqlsdk.__file__)"], cwd=app)
    installed = Path(where.stdout.strip()).parent
    assert installed.is_relative_to(app / ".venv"), installed
    wanted = {
        path.relative_to(SOURCE).as_posix()
        for path in SOURCE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    got = {
        path.relative_to(installed).as_posix()
        for path in installed.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert {"py.typed", "integrations/templates/pqlsdk/blocked.html"} <= wanted
    assert wanted - got == set()


def test_the_flask_integration_renders_its_templates_from_the_wheel(app: Path) -> None:
    """A gated view denied: the blocked page and its moment, from the packaged templates."""
    script = textwrap.dedent(
        """
        from flask import Flask

        import pqlsdk
        from pqlsdk.integrations.flask import PQLSDK, require_feature

        client = pqlsdk.Client(store="memory://", rules="rules.toml")
        client.identify("u1", {"plan": "trial"})
        ext = PQLSDK(client=client)
        app = Flask(__name__)
        app.config["SECRET_KEY"] = "test"
        ext.init_app(app)
        ext.user_id(lambda: "u1")

        @app.get("/sso")
        @require_feature("sso")
        def sso():
            return "SSO settings"

        answer = app.test_client().get("/sso")
        print(answer.status_code)
        print(answer.get_data(as_text=True))
        client.close()
        """
    )
    done = _run([app / ".venv/bin/python", "-c", script], cwd=app)
    status, _, page = done.stdout.partition("\n")
    assert status == "403", done.stdout
    assert "<html" in page  # pqlsdk/blocked.html
    assert "is on the Business plan" in page  # the moment, through pqlsdk/moment.html


def test_the_console_script_answers(app: Path) -> None:
    """The wheel's ``pqlsdk`` entry point runs ``--help`` and ``check`` on the quickstart rules."""
    helped = _run([app / ".venv/bin/pqlsdk", "--help"], cwd=app)
    assert helped.stdout.startswith("usage: pqlsdk"), helped.stdout
    _run([app / ".venv/bin/pqlsdk", "check", "rules.toml"], cwd=app)
