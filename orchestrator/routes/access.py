"""Who may call what: the admin token on catalog-changing routes, the per-client rate limit on shopper routes.

Routes declare `require_admin` / `rate_limited` as dependencies (so OpenAPI shows the admin routes' bearer
scheme), but FastAPI reads a request's body before it runs dependencies. So the routers' `GatedRoute` applies
the same checks from the headers alone before any body is read: an unauthenticated upload is refused at once
instead of being spooled to disk first. The dependencies re-check what the gate let through
(the token; the rate limit is taken once, by the gate).
"""

from __future__ import annotations

import hmac

from fastapi import Depends, Request, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.types import Scope

from orchestrator.errors import Forbidden, RateLimited, SnapfitError, Unauthorized
from orchestrator.metrics import AUTH_FAILURES, RATE_LIMITED
from orchestrator.routes.deps import services, services_of

admin_bearer = HTTPBearer(auto_error=False, scheme_name="adminToken",
                          description="The admin token (SNAPFIT_ADMIN_TOKEN; `snapfit up` prints it). Needed to "
                                      "change the catalog: imports, product updates and deletions.")
_RATE_CHECKED = "snapfit.rate_checked"
# multipart framing and form fields around the largest upload the routes accept
BODY_OVERHEAD_BYTES = 1024 * 1024


async def require_admin(credentials: HTTPAuthorizationCredentials | None = Security(admin_bearer),
                        svc=Depends(services)) -> None:
    """Lets the request through only with `Authorization: Bearer <the admin token>` (compared in constant time)."""
    refusal = admin_refusal(None if credentials is None else credentials.credentials, svc.settings)
    if refusal is not None:
        raise refusal


async def rate_limited(request: Request, svc=Depends(services)) -> None:
    """Takes one token from the calling client's bucket (unless the gate did); RateLimited when it is empty."""
    if not request.scope.get(_RATE_CHECKED):
        refusal = rate_refusal(request.scope, request.headers, svc)
        if refusal is not None:
            raise refusal


def admin_refusal(bearer_token: str | None, settings) -> SnapfitError | None:
    """Why a request with this bearer token (None: no bearer credentials) may not change the catalog; None
    when it may. Counts refusals."""
    expected = settings.admin_token
    if expected is None:
        AUTH_FAILURES.labels(reason="disabled").inc()
        return Forbidden("the admin endpoints are disabled on this server: it was started without "
                         "SNAPFIT_ADMIN_TOKEN")
    if bearer_token is None:
        AUTH_FAILURES.labels(reason="missing").inc()
        return Unauthorized("this endpoint changes the catalog and needs the admin token: "
                            "send `Authorization: Bearer <token>`")
    # headers arrive decoded as latin-1: re-encoding gives the bytes sent, so a UTF-8 token compares as sent
    if not hmac.compare_digest(bearer_token.encode("latin-1", errors="replace"),
                               expected.get_secret_value().encode()):
        AUTH_FAILURES.labels(reason="wrong").inc()
        return Forbidden("wrong admin token")
    return None


def rate_refusal(scope: Scope, headers: Headers, svc) -> SnapfitError | None:
    """Takes a token from the client's bucket; RateLimited when it is empty, else None."""
    scope[_RATE_CHECKED] = True
    retry_after_s = svc.rate_limiter.acquire(client_key(scope, headers, svc.settings.rate_limit.forwarded_for_hops))
    if retry_after_s is None:
        return None
    RATE_LIMITED.inc()
    return RateLimited("too many requests from this client; retry later", retry_after_s=retry_after_s)


def client_key(scope: Scope, headers: Headers, forwarded_for_hops: int) -> str:
    """The client's address. Behind N trusted proxies (forwarded_for_hops = N) it is the N-th address from the
    right of X-Forwarded-For: each proxy appends the address it received from, so entries further left were
    written by the client itself and prove nothing. Without proxies (0), or with a shorter header, the peer."""
    if forwarded_for_hops:
        hops = [hop.strip() for hop in headers.get("x-forwarded-for", "").split(",") if hop.strip()]
        if len(hops) >= forwarded_for_hops:
            return hops[-forwarded_for_hops]
    client = scope.get("client")
    return client[0] if client else "unknown"


def bearer_token(headers: Headers) -> str | None:
    """The credentials of an `Authorization: Bearer ...` header; None for none or another scheme."""
    scheme, token = get_authorization_scheme_param(headers.get("authorization"))
    return token if scheme.lower() == "bearer" and token else None


class GatedRoute(APIRoute):
    """An APIRoute that applies its declared access checks from the headers, before FastAPI reads the body (it
    reads it before running dependencies). Refusals are raised as our errors, so orchestrator/app.py's handler
    answers them like any other. (The body-size cap is FastAPI's own `max_body_size`, set in create_app.)"""

    def get_route_handler(self):
        handler = super().get_route_handler()
        checks = {dependency.call for dependency in self.dependant.dependencies}
        if not checks & {require_admin, rate_limited}:
            return handler

        async def gated(request: Request):
            svc = services_of(request)
            if require_admin in checks:
                refusal = admin_refusal(bearer_token(request.headers), svc.settings)
                if refusal is not None:
                    raise refusal
            if rate_limited in checks:
                refusal = rate_refusal(request.scope, request.headers, svc)
                if refusal is not None:
                    raise refusal
            return await handler(request)
        return gated
