"""Domain errors of the orchestrator. Only `orchestrator/app.py` maps them to HTTP (status, code, headers).

Services, clients and stores raise these; none of them imports fastapi.
"""

from __future__ import annotations


class SnapfitError(Exception):
    """Base class: an unexpected failure (500). `code` is the stable machine-readable error code."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, retry_after_s: float | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class BadRequest(SnapfitError):
    """The request is malformed (e.g. an undecodable image, a broken CSV)."""

    status = 400
    code = "bad_request"


class Unauthorized(SnapfitError):
    """The request carries no credentials for an endpoint that needs them (401, with a Bearer challenge)."""

    status = 401
    code = "unauthorized"


class Forbidden(SnapfitError):
    """The credentials are wrong, or the endpoint is disabled on this server."""

    status = 403
    code = "forbidden"


class NotFound(SnapfitError):
    status = 404
    code = "not_found"


class PayloadTooLarge(SnapfitError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(SnapfitError):
    status = 415
    code = "unsupported_media_type"


class InvalidInput(SnapfitError):
    """Well-formed but semantically invalid input (a point outside the image, a negative price)."""

    status = 422
    code = "invalid_input"


class PersonNotFound(InvalidInput):
    """The try-on photo shows no person whose body can be dressed (no pose detected)."""

    code = "person_not_found"


class NotTryOnReady(InvalidInput):
    """The product's photo was classified as unusable for try-on; the caller may force it."""

    code = "not_tryon_ready"


class Conflict(SnapfitError):
    """The resource is not in a state that allows this (e.g. the result of an unfinished job)."""

    status = 409
    code = "conflict"


class Overloaded(SnapfitError):
    """A queue is full (Triton's for a model, or the orchestrator's try-on queue); retry later."""

    status = 429
    code = "overloaded"


class RateLimited(Overloaded):
    """This client sent more shopper requests than its per-client rate allows; retry after Retry-After."""

    code = "rate_limited"


class ModelUnavailable(SnapfitError):
    """Triton is down, or a model is not ready."""

    status = 503
    code = "model_unavailable"


class ModelDeadlineExceeded(ModelUnavailable):
    """A model did not answer within the call's deadline (same answer as ModelUnavailable; callers that send
    work in chunks send smaller ones after it)."""


class StoreUnavailable(SnapfitError):
    """Where snapfit keeps its data cannot be reached or written: the catalog store (MongoDB / SQLite), the saved
    vector index, the uploaded photos (a full disk, a read-only volume). Nothing was half-written; retry later."""

    status = 503
    code = "store_unavailable"
    RETRY_AFTER_S = 5.0

    def __init__(self, message: str, *, retry_after_s: float | None = RETRY_AFTER_S):
        super().__init__(message, retry_after_s=retry_after_s)
