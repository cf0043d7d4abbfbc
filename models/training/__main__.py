"""`python -m models.training train|predict ...`: the same commands as `hidiff train|predict`,
for `torchrun --nproc_per_node=N -m models.training train ...` and for installs where the
entry points are not registered yet. User errors print one line and exit 2, as in `hidiff`."""

import sys

import typer
from rich.markup import escape

from edge_runtime.console import console, setup_logging
from edge_runtime.errors import HidiffError
from models.training.cli import predict, train


def build_app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("train")(train)
    app.command("predict")(predict)
    return app


def main() -> None:
    setup_logging()
    try:
        build_app()(prog_name="python -m models.training")
    except HidiffError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
