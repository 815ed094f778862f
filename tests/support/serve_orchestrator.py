"""`python -m tests.support.serve_orchestrator --port N`: `snapfit serve` that also opens mongomock:// catalogs.

Integration tests start this instead of `snapfit serve` for the in-process mongomock store, which production
code does not know (settings come from SNAPFIT_* variables, as for `snapfit serve`).
"""

from __future__ import annotations

import argparse

import uvicorn

from orchestrator.app import create_app
from orchestrator.settings import Settings
from tests.support.mongomock_store import open_test_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings()
    uvicorn.run(create_app(settings, open_store=open_test_store), host=settings.host, port=args.port,
                log_level="info", timeout_graceful_shutdown=10, timeout_keep_alive=settings.keep_alive_s)


if __name__ == "__main__":
    main()
