"""Finding a holder's own wrapped data key for a version, from public ledger data.

To grant, delegate or re-wrap, a holder (patient, delegate or custodian)
unwraps each version's data key with its own key and wraps it again for the
grantee. Its wrapped copy is public ciphertext on the ledger: in the version's
metadata when the node lists it, else in the payload of the transaction that
wrote the version (``record.create``/``record.amend``) or that re-wrapped it
for the holder later (``delegate.add``, ``access.grant``, ``keys.rewrap``).
Those transactions are found once through the patient's history.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ehrchain.client.errors import MissingData
from ehrchain.client.http import EhrClient

__all__ = ["WrappedKeys"]

_WRITES: Final = ("record.create", "record.amend")
_REWRAPS: Final = {"delegate.add": "caregiver", "access.grant": "grantee", "keys.rewrap": "grantee"}
"""Kinds that re-wrap keys, and the payload field naming whom for."""


class WrappedKeys:
    """The holder's wrapped keys of one patient's versions, looked up on first need."""

    def __init__(self, client: EhrClient, patient: str, holder: str) -> None:
        self.client = client
        self.patient = patient
        self.holder = holder
        self._index: dict[tuple[str, int], bytes] | None = None

    def of(self, meta: Mapping[str, Any], record_id: str, number: int) -> bytes:
        listed = meta.get("wrapped")
        if isinstance(listed, Mapping) and isinstance(listed.get(self.holder), str):
            return bytes.fromhex(listed[self.holder])
        if self._index is None:
            self._index = self._build_index()
        found = self._index.get((record_id, number))
        if found is None:
            raise MissingData(f"no wrapped key of {self.holder} for {record_id} v{number}")
        return found

    def _build_index(self) -> dict[tuple[str, int], bytes]:
        index: dict[tuple[str, int], bytes] = {}
        for event in self.client.iter_history(self.patient):
            kind = event.get("kind")
            if kind not in _WRITES and kind not in _REWRAPS:
                continue
            found = self.client.tx(bytes.fromhex(str(event["tx_id"])))
            payload: Mapping[str, Any] = found["tx"]["payload"] if found else {}
            if kind in _WRITES:
                key = _hex(payload.get("wrapped", {}).get(self.holder))
                if key is not None:
                    index.setdefault((str(event["record_id"]), int(event["version"])), key)
            elif payload.get(_REWRAPS[str(kind)]) == self.holder:
                for record_id, version, wrapped in payload.get("rewraps", ()):
                    key = _hex(wrapped)
                    if key is not None:
                        index.setdefault((str(record_id), int(version)), key)
        return index


def _hex(value: Any) -> bytes | None:
    """Bytes as the transaction JSON view shows them: ``{"hex": ...}``."""
    if isinstance(value, Mapping) and isinstance(value.get("hex"), str):
        return bytes.fromhex(value["hex"])
    return None
