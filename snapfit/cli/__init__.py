"""The `snapfit` command line: export models, serve them with Triton, train the classifier, run the demo.

The top of the house: it imports every package, and nothing imports it. One module per group of commands,
all registered on `snapfit.cli.app.app`.
"""

from __future__ import annotations

import sys

# importing a command module registers its commands; this order is the order `snapfit --help` lists them in
# isort: off
from snapfit.cli import export_cmd  # noqa: F401
from snapfit.cli import catalog_cmd  # noqa: F401
from snapfit.cli import serve_cmd  # noqa: F401
from snapfit.cli import tryon_cmd  # noqa: F401
from snapfit.cli import bench_cmd  # noqa: F401
# isort: on
from snapfit.cli.app import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
