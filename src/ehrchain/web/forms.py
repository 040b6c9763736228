"""Reading form fields: addresses, dates, files, with one clear error per bad field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from starlette.datastructures import FormData, UploadFile

from ehrchain.core.address import parse_address
from ehrchain.core.errors import CoreError
from ehrchain.ehr.records import DOCUMENT_MAGIC
from ehrchain.web.accounts import AccountStore
from ehrchain.web.errors import BadForm

JSON_TYPES: Final = ("application/json", "application/fhir+json")


def text(form: FormData, name: str, required: bool = True, max_length: int = 1000) -> str:
    value = form.get(name, "")
    value = value.strip() if isinstance(value, str) else ""
    if required and not value:
        raise BadForm(name, "is required")
    if len(value) > max_length:
        raise BadForm(name, f"must be at most {max_length} characters")
    return value


def address(form: FormData, name: str, accounts: AccountStore) -> str:
    """An ``ehr1…`` address, or the username of a web account."""
    value = text(form, name)
    if value.startswith("ehr1"):
        try:
            parse_address(value)
        except CoreError:
            raise BadForm(name, "is not a valid address") from None
        return value
    account = accounts.get(value)
    if account is None:
        raise BadForm(name, "give an address (ehr1…) or the username of an account")
    return account.address


def expiry_ms(form: FormData, name: str, now_ms: int) -> int:
    """End of the chosen day (UTC) in ms, or 0 for no expiry; must be in the future."""
    value = text(form, name, required=False)
    if not value:
        return 0
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise BadForm(name, "must be a date (YYYY-MM-DD)") from None
    end = int((day + timedelta(days=1)).timestamp() * 1000) - 1
    if end <= now_ms:
        raise BadForm(name, "must be today or later")
    return end


async def upload(form: FormData, name: str, max_bytes: int) -> tuple[bytes, str]:
    """The uploaded file's bytes and its media type, told from its first bytes."""
    item = form.get(name)
    if not isinstance(item, UploadFile) or not item.filename:
        raise BadForm(name, "choose a file")
    data = await item.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise BadForm(name, f"must be at most {max_bytes // (1024 * 1024)} MiB")
    if not data:
        raise BadForm(name, "is empty")
    for media_type, signatures in DOCUMENT_MAGIC.items():
        if data.startswith(signatures):
            return data, media_type
    if data.lstrip()[:1] == b"{":
        return data, "application/fhir+json"
    raise BadForm(name, "must be a PDF, PNG, JPEG or FHIR JSON file")
