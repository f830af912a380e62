"""The HTTP status of each error and of each signed answer (docs/protocol.md §8.2, §12.2,
docs/api.md "Errors").

Errors know their stable code and problem type; which HTTP status they travel with is
HTTP's business and lives here, one table for the problem middleware and for signed
answers. A subclass not in the table takes the status of its nearest listed ancestor.
"""

from __future__ import annotations

from node.errors import (
    AuthError,
    BadSignature,
    ConfigError,
    Conflict,
    DatabaseBusy,
    DiskFull,
    Forbidden,
    InputError,
    KeyMismatch,
    LogCorrupted,
    NotFound,
    PayloadTooLarge,
    ProtocolError,
    RateLimited,
    Refusal,
    RequestTimeout,
    TooManyBadRequests,
    UnknownDetailRequest,
    VhnodeError,
)

STATUS: dict[type[VhnodeError], int] = {
    VhnodeError: 500,
    InputError: 400,
    PayloadTooLarge: 413,
    RequestTimeout: 408,
    ConfigError: 500,
    NotFound: 404,
    Conflict: 409,
    TooManyBadRequests: 429,
    AuthError: 401,
    Forbidden: 403,
    ProtocolError: 400,
    BadSignature: 401,
    KeyMismatch: 409,
    LogCorrupted: 500,
    DatabaseBusy: 503,
    # RFC 4918 §11.5: the server cannot store what the request needs stored. Not 503:
    # retrying does not help until someone frees space.
    DiskFull: 507,
    # Refusals: 403, except a rate limit (429) and a poll of an unknown request (404).
    Refusal: 403,
    RateLimited: 429,
    UnknownDetailRequest: 404,
}


def http_status(error: VhnodeError) -> int:
    """The status ``error`` is answered with, as problem+json or as a signed refusal."""
    for cls in type(error).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500


def answer_status(refusal: Refusal | None) -> int:
    """A signed answer travels with 200, or with its refusal's status (§6.6 step 11)."""
    return 200 if refusal is None else http_status(refusal)
