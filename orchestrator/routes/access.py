"""Who may call what: the admin token on catalog-changing routes, the per-client rate limit on shopper routes.

Both are FastAPI dependencies; routes declare them, so OpenAPI shows the admin routes' bearer scheme.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from orchestrator.errors import Forbidden, RateLimited, Unauthorized
from orchestrator.metrics import AUTH_FAILURES, RATE_LIMITED
from orchestrator.routes.deps import services

admin_bearer = HTTPBearer(auto_error=False, scheme_name="adminToken",
                          description="The admin token (SNAPFIT_ADMIN_TOKEN; `snapfit up` prints it). Needed to "
                                      "change the catalog: imports, product updates and deletions.")


async def require_admin(credentials: HTTPAuthorizationCredentials | None = Security(admin_bearer),
                        svc=Depends(services)) -> None:
    """Lets the request through only with `Authorization: Bearer <the admin token>` (compared in constant time)."""
    expected = svc.settings.admin_token
    if expected is None:
        AUTH_FAILURES.labels(reason="disabled").inc()
        raise Forbidden("the admin endpoints are disabled on this server: it was started without "
                        "SNAPFIT_ADMIN_TOKEN")
    if credentials is None:
        AUTH_FAILURES.labels(reason="missing").inc()
        raise Unauthorized("this endpoint changes the catalog and needs the admin token: "
                           "send `Authorization: Bearer <token>`")
    # headers arrive decoded as latin-1: re-encoding gives the bytes sent, so a UTF-8 token compares as sent
    if not hmac.compare_digest(credentials.credentials.encode("latin-1", errors="replace"),
                               expected.get_secret_value().encode()):
        AUTH_FAILURES.labels(reason="wrong").inc()
        raise Forbidden("wrong admin token")


async def rate_limited(request: Request, svc=Depends(services)) -> None:
    """Takes one token from the calling client's bucket; RateLimited (429, Retry-After) when it is empty."""
    retry_after_s = svc.rate_limiter.acquire(client_key(request, svc.settings.rate_limit.trust_forwarded_for))
    if retry_after_s is not None:
        RATE_LIMITED.inc()
        raise RateLimited("too many requests from this client; retry later", retry_after_s=retry_after_s)


def client_key(request: Request, trust_forwarded_for: bool) -> str:
    """The client's address: the first X-Forwarded-For entry behind a trusted proxy, else the peer address."""
    if trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
        if forwarded:
            return forwarded
    return request.client.host if request.client else "unknown"
