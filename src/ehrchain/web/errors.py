"""Errors of the web front end and the one place that turns any error into a message.

    WebError
    ├── BadForm          a form field is missing or wrong (names the field)
    ├── LoginFailed      wrong username or password (never says which)
    ├── RateLimited      too many failed logins; try again later
    ├── CsrfFailed       the form's anti-forgery token is missing or wrong
    ├── Forbidden        the signed-in role may not open this page
    └── AccountExists    the username is taken

Messages shown to people come from ``describe``: a plain sentence chosen by the
error's ``code``, plus the error's own text, which by the lower layers' contract
names only ids, fields and numbers, never health data.
"""

from __future__ import annotations

from typing import Final

from ehrchain.core.errors import CoreError
from ehrchain.crypto.errors import CryptoError
from ehrchain.ehr.errors import EhrError
from ehrchain.node.errors import NodeError


class WebError(Exception):
    """Base of the web layer's own errors; ``status`` is the HTTP status to answer with."""

    code = "web_error"
    status = 400


class BadForm(WebError):
    code = "bad_form"

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{field}: {problem}")


class LoginFailed(WebError):
    code = "login_failed"
    status = 401

    def __init__(self) -> None:
        super().__init__("wrong username or password")


class RateLimited(WebError):
    code = "rate_limited"
    status = 429

    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} seconds")


class CsrfFailed(WebError):
    code = "csrf_failed"
    status = 403

    def __init__(self) -> None:
        super().__init__("the form has expired or did not come from this site; reload and retry")


class Forbidden(WebError):
    code = "forbidden"
    status = 403


class AccountExists(WebError):
    code = "account_exists"
    status = 409


_SENTENCES: Final[dict[str, str]] = {
    "not_authorised": "You are not allowed to do this.",
    "not_verified": "This provider has not been verified by a validator yet.",
    "unknown_account": "That account is not registered on the chain.",
    "inactive_account": "That account is not active.",
    "not_found": "Nothing was found there.",
    "already_exists": "That already exists.",
    "malformed_payload": "Some of the details are not valid.",
    "invalid_fhir": "The clinical data is not a valid FHIR resource.",
    "invalid_document": "The file is not a PDF, PNG or JPEG, or it is too large.",
    "stale_epoch": "Access changed while you were working; please try again.",
    "wrong_readers": "Access changed while you were working; please try again.",
    "bad_version": "Someone saved a newer version meanwhile; reopen the record and retry.",
    "bad_nonce": "Another action of yours was in flight; please try again.",
    "expired": "That date is already in the past.",
    "immutable": "That part of a record cannot change between versions.",
    "record_integrity": "The stored record failed its integrity check and was not shown.",
    "not_a_reader": "Your keys do not open this version: access was not granted for it.",
    "too_large": "The file is too large.",
    "duplicate": "That was already submitted.",
    "pool_full": "The node is busy; please try again in a moment.",
}


_RULES: Final[dict[str, str]] = {
    "record_read": "You have no access to this record: the patient has not granted it, "
    "or has revoked it.",
    "create_consent": "The patient has not allowed you to add records to their file.",
    "patient_or_delegate": "Only the patient or their caregiver may do this.",
    "sender_is_provider": "Only a provider may do this.",
    "sender_is_custodian": "Only the patient's hospital may do this.",
}


def code_of(exc: BaseException) -> str:
    return str(getattr(exc, "code", "error"))


def describe(exc: BaseException) -> str:
    """A sentence for a person; detail only from errors whose messages carry no content."""
    if isinstance(exc, WebError):
        return str(exc)
    rule = getattr(exc, "rule", None)
    if isinstance(rule, str) and rule in _RULES:
        return _RULES[rule]
    if isinstance(exc, EhrError | NodeError | CoreError | CryptoError):
        sentence = _SENTENCES.get(code_of(exc), "The request was refused.")
        detail = str(exc)
        return f"{sentence} ({detail})" if detail else sentence
    return "Something went wrong on the server; nothing was changed."


def status_of(exc: BaseException) -> int:
    if isinstance(exc, WebError):
        return exc.status
    code = code_of(exc)
    if code in ("not_authorised", "not_verified", "not_a_reader"):
        return 403
    if code == "not_found":
        return 404
    if code in ("already_exists", "bad_version", "stale_epoch", "wrong_readers", "bad_nonce"):
        return 409
    if code == "too_large":
        return 413
    if isinstance(exc, EhrError | NodeError | CoreError | CryptoError):
        return 400
    return 500
