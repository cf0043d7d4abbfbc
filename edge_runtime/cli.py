"""The `hidiff` command.

The runtime owns the root; upper layers (models, compress, benchmarks, apps) add their commands
through the `hidiff.commands` entry-point group, so this module never imports them by name and a
runtime-only install still has a working `hidiff`. An entry point loads either a `typer.Typer`
(added as a command group under the entry point's name) or a function (added as a command).

Errors a user can fix (`HidiffError`) print as one line and exit with code 2; `--debug` adds the
traceback.
"""

import sys
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

import typer
from rich.markup import escape

from edge_runtime import __version__
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


def build_app() -> typer.Typer:
    """The root app with every installed layer's commands registered."""
    app = typer.Typer(
        name="hidiff",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
        except ImportError as exc:
            app.command(
                name=ep.name,
                context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
            )(_unavailable(ep.name, f"missing module {exc.name}"))
            continue
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=ep.name)
        else:
            app.command(name=ep.name)(obj)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `hidiff` console script.

    Typer's standalone mode handles usage errors (exit 2), `--help` and Ctrl-C; what reaches us
    is a `HidiffError` (one line, exit 2) or a bug (traceback, exit 1).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    _state["debug"] = "--debug" in args
    try:
        build_app()(args=args, prog_name="hidiff")
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
