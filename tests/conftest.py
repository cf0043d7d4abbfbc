"""Shared fixtures. Helpers that render data are session-scoped so the suite stays fast."""

import os

# Keep numerics and timing stable on CI's two cores.
os.environ.setdefault("OMP_NUM_THREADS", "2")
