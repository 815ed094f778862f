"""Access to the services the lifespan built, for route handlers."""

from __future__ import annotations

from fastapi import Request


def services(request: Request):
    """The `Services` bundle of orchestrator.app (typed loosely to keep routes free of app imports)."""
    return request.app.state.services
