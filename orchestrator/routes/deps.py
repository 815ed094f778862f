"""Access to the services the lifespan built, for route handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:  # routes must not import the app module at run time (it imports them)
    from orchestrator.app import Services


def services_of(request: Request) -> Services:
    """The `Services` bundle orchestrator.app's lifespan built."""
    return request.app.state.services


async def services(request: Request) -> Services:
    """`services_of` as a dependency. A coroutine: FastAPI runs a plain function dependency in its thread pool,
    a thread hop on every request for what is an attribute read."""
    return services_of(request)
