"""HiDiff-Edge runtime: the lean layer a clinic installs.

It runs model packages with numpy and onnxruntime only, reads and writes medical images, and is
the root of the `hidiff` command. It never imports torch or any layer above it (see DESIGN.md).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hidiff-edge")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
