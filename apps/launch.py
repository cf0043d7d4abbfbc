"""`hidiff app`: start the desktop app on this computer only.

Streamlit is started as its own process (`python -m streamlit run apps/Home.py`) with the
settings a hospital desktop needs, given on the command line so no config file in the user's
home can override them: bound to 127.0.0.1 (nothing on the network can reach the app), usage
statistics off (nothing leaves the machine), headless (the user opens the printed address, or
`--browser` opens it), an upload limit, and no file watcher.

`--demo` prepares the phantom demo case with `hidiff phantom case` (a subprocess: the app never
imports `models`) in the user's hidiff cache, once, and offers it in the sidebar.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from apps.state import DEMO_ENV, UPLOAD_MB_ENV
from edge_runtime.errors import HidiffError
from edge_runtime.providers import hidiff_cache_root

HOME = Path(__file__).resolve().parent / "Home.py"


@dataclass(frozen=True)
class DemoCase:
    """The phantom patient the demo opens: outside the training cohort, light enough to render
    in a few seconds and synthesize in a few more on a clinic CPU."""

    seed: int = 2026
    grid: int = 256
    slices: int = 32

    def folder(self) -> Path:
        return hidiff_cache_root() / "app" / f"demo-case-{self.seed}-{self.grid}-{self.slices}"


def prepare_demo(case: DemoCase = DemoCase()) -> Path:
    """Render the demo case with `hidiff phantom case` unless it is already there."""
    folder = case.folder()
    if (folder / "case.json").is_file():
        return folder
    hidiff = shutil.which("hidiff") or str(Path(sys.executable).with_name("hidiff"))
    cmd = [hidiff, "phantom", "case", "--seed", str(case.seed), "--grid", str(case.grid)]
    cmd += ["--slices", str(case.slices), "--out", str(folder)]
    typer.echo(f"Preparing the demo case: {' '.join(cmd)}")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise HidiffError(f"cannot run `hidiff phantom case` for the demo ({exc})") from exc
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise HidiffError(
            f"`hidiff phantom case` failed ({reason[0]}); the demo needs the models extra: "
            "pip install 'hidiff-edge[models]'"
        )
    return folder


def streamlit_command(port: int, max_upload_mb: int, open_browser: bool) -> list[str]:
    """The `streamlit run` command line with every setting that matters for a clinic."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(HOME),
        "--server.address=127.0.0.1",
        f"--server.port={port}",
        f"--server.headless={'false' if open_browser else 'true'}",
        f"--server.maxUploadSize={max_upload_mb}",
        "--server.fileWatcherType=none",
        "--browser.gatherUsageStats=false",
        "--browser.serverAddress=127.0.0.1",
        "--global.developmentMode=false",
        "--client.toolbarMode=minimal",
        "--theme.base=light",
    ]


def app(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 to serve the app on.")] = 8501,
    demo: Annotated[
        bool, typer.Option("--demo", help="Prepare and offer the phantom demo case.")
    ] = False,
    demo_case: Annotated[
        Path | None,
        typer.Option("--demo-case", help="Offer this phantom case folder as the demo case."),
    ] = None,
    max_upload_mb: Annotated[int, typer.Option(help="Largest upload accepted (MB).")] = 2048,
    browser: Annotated[
        bool, typer.Option("--browser", help="Open the app in the web browser.")
    ] = False,
) -> None:
    """Start the desktop app (Streamlit) on http://127.0.0.1:PORT, reachable from this computer
    only. The images it makes are synthetic: for research, not for diagnosis."""
    if max_upload_mb < 1:
        raise HidiffError(f"--max-upload-mb must be >= 1, got {max_upload_mb}")
    env = dict(os.environ)
    env[UPLOAD_MB_ENV] = str(max_upload_mb)
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    if demo_case is not None:
        if not (demo_case / "case.json").is_file():
            raise HidiffError(f"{demo_case}: not a phantom case folder (no case.json)")
        env[DEMO_ENV] = str(demo_case.resolve())
    elif demo:
        env[DEMO_ENV] = str(prepare_demo())
    typer.echo(f"HiDiff-Edge app on http://127.0.0.1:{port} (this computer only; Ctrl+C stops it)")
    proc = subprocess.Popen(streamlit_command(port, max_upload_mb, browser), env=env)
    # Stopping the launcher (SIGTERM from a service manager or a test) stops the server too.
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        code = proc.wait()
    if code not in (0, -15):
        raise typer.Exit(code)


def main() -> None:
    """`python -m apps.launch`: the same command before `hidiff app` is registered."""
    command = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    command.command()(app)
    try:
        command(standalone_mode=False)
    except HidiffError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
