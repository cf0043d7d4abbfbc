"""The `hidiff` root: version, help, and the one-line error contract (exit 2)."""

import subprocess
import sys

import pytest
import typer

from edge_runtime import __version__, cli
from edge_runtime.errors import HidiffError


def run_hidiff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_runtime.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_version() -> None:
    out = run_hidiff("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"hidiff {__version__}"


def test_help_lists_layer_commands() -> None:
    out = run_hidiff("--help")
    assert out.returncode == 0
    for name in ("phantom", "info"):
        assert name in out.stdout


def test_unknown_command_is_a_usage_error() -> None:
    out = run_hidiff("no-such-command")
    assert out.returncode == 2
    assert "No such command" in out.stderr


def _app_raising(exc: Exception) -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.callback()(cli._root)

    @app.command()
    def boom() -> None:
        raise exc

    @app.command()
    def other() -> None:
        pass

    return app


def test_user_error_is_one_line_exit_2(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "build_app", lambda: _app_raising(HidiffError("bad [input] here")))
    with pytest.raises(SystemExit) as exc_info:
        cli.main(["boom"])
    assert exc_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: bad [input] here"
    assert "Traceback" not in err


def test_debug_shows_traceback(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "build_app", lambda: _app_raising(HidiffError("bad input")))
    with pytest.raises(SystemExit):
        cli.main(["--debug", "boom"])
    assert "Traceback" in capsys.readouterr().err


def test_bug_keeps_its_traceback(monkeypatch) -> None:
    monkeypatch.setattr(cli, "build_app", lambda: _app_raising(ZeroDivisionError("bug")))
    with pytest.raises(ZeroDivisionError):
        cli.main(["boom"])


def test_missing_extra_is_reported_not_crashed(monkeypatch, capsys) -> None:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command(
        name="phantom",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )(cli._unavailable("phantom", "missing module torch"))

    @app.command()
    def other() -> None:
        pass

    monkeypatch.setattr(cli, "build_app", lambda: app)
    with pytest.raises(SystemExit) as exc_info:
        cli.main(["phantom", "case", "--seed", "1"])
    assert exc_info.value.code == 2
    assert "missing module torch" in capsys.readouterr().err


def test_only_the_invoked_layer_is_imported() -> None:
    """`hidiff info` must not pay for importing torch, the model or the app (lazy entry points)."""
    code = (
        "import sys\n"
        "from edge_runtime.cli import main\n"
        "try:\n"
        "    main(['info', '--help'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "loaded = [m for m in ('torch', 'models', 'compress', 'apps', 'streamlit') if m in sys.modules]\n"
        "print('loaded=' + ','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "loaded="


def test_layer_groups_keep_their_names_in_usage() -> None:
    out = run_hidiff("phantom", "case", "--help")
    assert out.returncode == 0
    assert "Usage: hidiff phantom case" in out.stdout
    assert "install-completion" not in out.stdout
