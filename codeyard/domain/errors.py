"""Domain errors. The API maps each class to an RFC 7807 problem in one table (api/problems.py)."""

from __future__ import annotations

from typing import Any


class CodeyardError(Exception):
    """Base class: ``detail`` is a sentence a person can act on; ``extra`` adds problem members."""

    title = "Error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(CodeyardError):
    title = "Not found"


class BadRequest(CodeyardError):
    title = "Bad request"


class ValidationFailed(CodeyardError):
    """Input is well formed but not acceptable; ``errors`` lists the fields."""

    title = "Validation failed"


class Conflict(CodeyardError):
    title = "Conflict"


class PayloadTooLarge(CodeyardError):
    """Something asked for (a file, a blob) is bigger than the API will send."""

    title = "Payload too large"


class InvalidTransition(Conflict):
    """An action that the run's current status does not allow (carries ``current_status``)."""

    title = "Invalid run status"


class Unauthorized(CodeyardError):
    title = "Unauthorized"


class Forbidden(CodeyardError):
    """Authenticated, but not allowed: a missing scope, another user's run, a bad CSRF token."""

    title = "Forbidden"


class TooManyRequests(CodeyardError):
    """Rate limited; ``retry_after`` (seconds) becomes the ``Retry-After`` header."""

    title = "Too many requests"
