"""The break-glass reason: free text only the patient can read.

A provider who breaks the glass states why; the text may be clinical, so it is
HPKE-wrapped to the patient's encryption key before it goes on the ledger, with
``info`` binding it to the chain, the patient and the provider (a reason copied
into another emergency does not open). Only the reason code is in clear.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ehrchain.core import encoding
from ehrchain.crypto import hpke
from ehrchain.crypto.errors import CryptoError, DecryptionError
from ehrchain.crypto.hpke import EncryptionKey

__all__ = ["MAX_REASON_BYTES", "REASON_DOMAIN", "open_reason", "reason_info", "seal_reason"]

REASON_DOMAIN: Final = "ehrchain/break-glass-reason/v1"
MAX_REASON_BYTES: Final = 4096 - hpke.WRAP_OVERHEAD


def reason_info(chain_id: str, patient: str, provider: str) -> bytes:
    return encoding.encode([REASON_DOMAIN, chain_id, patient, provider])


def seal_reason(
    chain_id: str, patient: str, patient_key: bytes, provider: str, reason: str
) -> bytes:
    """Wrap the reason text to the patient."""
    text = reason.encode("utf-8")
    if not text or len(text) > MAX_REASON_BYTES:
        raise ValueError(f"reason must be 1 to {MAX_REASON_BYTES} bytes of UTF-8")
    return hpke.wrap(patient_key, text, reason_info(chain_id, patient, provider))


def open_reason(
    chain_id: str, patient: str, keys: Sequence[EncryptionKey], provider: str, sealed: bytes
) -> str:
    """The patient opens a reason with any of its keys (current or rotated away from)."""
    info = reason_info(chain_id, patient, provider)
    for key in keys:
        try:
            return hpke.unwrap(key, sealed, info).decode("utf-8")
        except (CryptoError, UnicodeDecodeError):
            continue
    raise DecryptionError("no key of the patient opens this reason")
