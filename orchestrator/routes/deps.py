"""Access to the services the lifespan built, for route handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:  # routes must not import the app module at run time (it imports them)
    from orchestrator.app import Services


def services(request: Request) -> Services:
    """The `Services` bundle orchestrator.app's lifespan built."""
    return request.app.state.services
