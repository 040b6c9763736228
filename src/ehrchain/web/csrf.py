"""Anti-forgery for every form.

Signed-in forms carry the session's synchroniser token (hidden field
``csrf_token`` or, for htmx requests, the ``X-CSRF-Token`` header). The sign-in
form, which has no session yet, uses a double-submit token: a random value in
an HttpOnly cookie that the form must echo. On top, a request whose ``Origin``
header names another site is refused whatever its token.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Final
from urllib.parse import urlsplit

from starlette.requests import Request

from ehrchain.web.errors import CsrfFailed

FIELD: Final = "csrf_token"
HEADER: Final = "x-csrf-token"
LOGIN_COOKIE: Final = "ehr_login_csrf"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def check_origin(request: Request) -> None:
    """Refuse a cross-site request: Origin, when sent, must be this host."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        if origin == "null":
            raise CsrfFailed()
        return
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc != host:
        raise CsrfFailed()


def check(expected: str | None, given: str | None) -> None:
    """Constant-time comparison; a missing token on either side fails."""
    if not expected or not given or not hmac.compare_digest(expected, given):
        raise CsrfFailed()


def token_from(request: Request, form_value: str | None) -> str | None:
    return form_value or request.headers.get(HEADER)
