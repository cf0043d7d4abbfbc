"""One place for terminal output: the stderr console, logging set-up and progress bars.

All progress goes to stderr so that a command's stdout stays machine-readable.
"""

import logging

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
log = logging.getLogger("hidiff")


def setup_logging(debug: bool = False) -> None:
    """Send the `hidiff` loggers to stderr through rich; DEBUG level with `--debug`."""
    log.handlers.clear()
    log.addHandler(RichHandler(console=console, show_path=False, show_time=False))
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    log.propagate = False


def progress(transient: bool = False) -> Progress:
    """A progress bar with count, elapsed time and ETA; use as a context manager."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )
