"""The `hidiff` command.

The runtime owns the root; upper layers (models, compress, benchmarks, apps) add their commands
through the `hidiff.commands` entry-point group, so this module never imports them by name and a
runtime-only install still has a working `hidiff`. An entry point loads either a `typer.Typer`
(a command group under the entry point's name) or a function (one command). Entry points are
loaded lazily, only for the command that runs (all of them for `--help`), so `hidiff info` does
not pay for importing torch or streamlit.

Errors a user can fix (`HidiffError`, and a full disk wherever it strikes) print as one line and
exit with code 2; `--debug` adds the traceback.
"""

import sys
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import typer
import typer.main
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from edge_runtime import __version__
from edge_runtime.atomic import disk_full_error, is_disk_full
from edge_runtime.console import console, log, setup_logging
from edge_runtime.errors import HidiffError, MissingDependencyError

ENTRY_POINT_GROUP = "hidiff.commands"
EXIT_USER_ERROR = 2

_state = {"debug": False}


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"hidiff {__version__}")
        raise typer.Exit()


def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logging."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """HiDiff-Edge: CT to synthetic liver MRI, from the research model to the clinic's CPU."""
    _state["debug"] = debug
    setup_logging(debug)


def _unavailable(name: str, reason: str) -> Callable[[typer.Context], None]:
    """A command standing in for an upper layer whose extra is not installed."""

    def missing(ctx: typer.Context) -> None:
        raise MissingDependencyError(
            f"`hidiff {name}` is not available in this install ({reason}); "
            "install the extra it needs, e.g. pip install 'hidiff-edge[dev]'"
        )

    missing.__doc__ = f"[unavailable: {reason}]"
    return missing


def _layer_entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_layer_command(ep: EntryPoint) -> TyperCommand:
    """The click command behind one entry point, or a stand-in saying what is missing."""
    try:
        obj = ep.load()
    except ImportError as exc:
        obj = _unavailable(ep.name, f"missing module {exc.name}")
        settings = {"ignore_unknown_options": True, "allow_extra_args": True}
    else:
        settings = {}
    holder = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    if isinstance(obj, typer.Typer):
        holder.add_typer(obj, name=ep.name)
        holder.callback()(_holder_callback)  # a group, so the layer's group stays a sub-group
        return typer.main.get_command(holder).commands[ep.name]
    holder.command(name=ep.name, context_settings=settings)(obj)
    return typer.main.get_command(holder)


def _holder_callback() -> None:
    """Makes a holder app a group; never runs (only its sub-command is used)."""


class _LayeredGroup(TyperGroup):
    """The root group: its own commands plus one per entry point, each loaded on first use."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_layer_entry_points()))

    def get_command(self, ctx: typer.Context, cmd_name: str) -> TyperCommand | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        ep = _layer_entry_points().get(cmd_name)
        if ep is None:
            return None
        command = _load_layer_command(ep)
        self.add_command(command, cmd_name)
        return command


def build_app() -> typer.Typer:
    """The root app; every installed layer's commands are reachable through its group."""
    app = typer.Typer(
        name="hidiff",
        cls=_LayeredGroup,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `hidiff` console script.

    Typer's standalone mode handles usage errors (exit 2), `--help` and Ctrl-C; what reaches us
    is a `HidiffError` (one line, exit 2) or a bug (traceback, exit 1).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    _state["debug"] = "--debug" in args
    try:
        try:
            build_app()(args=args, prog_name="hidiff")
        except Exception as exc:  # a full disk that a library's own write ran into
            if isinstance(exc, HidiffError) or not is_disk_full(exc):
                raise
            raise disk_full_error(Path(getattr(exc, "filename", None) or "the output")) from exc
    except HidiffError as exc:
        if _state["debug"]:
            traceback.print_exc()
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_USER_ERROR)
    except Exception:
        log.error("internal error: please report it with the traceback below")
        raise


if __name__ == "__main__":
    main()
