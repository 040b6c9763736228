"""JSON views of ledger state for the API: bytes as hex, nothing decrypted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ehrchain.core.types import Address
from ehrchain.ehr.state import LedgerReader, State
from ehrchain.storage.ledger import Ledger
from ehrchain.storage.view import LedgerView

__all__ = ["LedgerReader", "account", "encryption_keys", "history"]

RECORD_EVENT_KINDS = ("record.create",)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [_jsonable(v) for v in value]
    return value


def account(state: State, address: Address) -> dict[str, Any] | None:
    acct = state.account(address)
    if acct is None:
        return None
    view = _jsonable(acct.to_value())
    view["address"] = address
    view["next_nonce"] = state.nonce(address)
    patient = state.patient(address)
    if patient is not None:
        view["patient"] = _jsonable(patient.to_value())
    provider = state.provider(address)
    if provider is not None:
        view["provider"] = _jsonable(provider.to_value())
    return dict(view)


def record(state: State, record_id: str) -> dict[str, Any] | None:
    rec = state.record(record_id)
    if rec is None:
        return None
    return {"record_id": record_id, **_jsonable(rec.to_value())}


def version(state: State, record_id: str, number: int) -> dict[str, Any] | None:
    rec = state.record(record_id)
    ver = state.version(record_id, number)
    if rec is None or ver is None:
        return None
    value = ver.to_value()
    return {
        "record_id": record_id,
        "version": number,
        "patient": rec.patient,
        "category": rec.category,
        "kind": rec.kind,
        "resource_type": rec.resource_type,
        **{k: v for k, v in value.items() if k not in ("wrapped", "commitment")},
        "commitment": ver.commitment,
        "readers": sorted(ver.wrapped),
    }


def encryption_keys(state: State, addresses: Iterable[Address]) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for address in sorted(addresses):
        acct = state.account(address)
        if acct is not None:
            keys[address] = acct.encryption_key
    return keys


def history(
    ledger: Ledger | LedgerView, patient: str, offset: int, limit: int
) -> list[dict[str, Any]]:
    return [
        {
            "kind": e.kind,
            "actor": e.actor,
            "record_id": e.record_id or None,
            "version": e.version if e.record_id else None,
            "height": e.height,
            "timestamp_ms": e.timestamp_ms,
            "tx_id": e.tx_id.hex(),
        }
        for e in ledger.events_for(patient, offset=offset, limit=limit)
    ]


def patient_records(
    ledger: Ledger | LedgerView, state: State, patient: str, offset: int, limit: int
) -> list[dict[str, Any]]:
    """The patient's records, newest first, from the events index."""
    seen: list[str] = []
    page = 0
    while True:
        events = ledger.events_for(patient, offset=page * 500, limit=500)
        for e in events:
            if e.kind in RECORD_EVENT_KINDS and e.record_id and e.record_id not in seen:
                seen.append(e.record_id)
        if len(events) < 500:
            break
        page += 1
    chosen = seen[offset : offset + limit]
    return [view for rid in chosen if (view := record(state, rid)) is not None]


def _by_status(items: Sequence[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [{"address": addr, **_jsonable(value.to_value())} for addr, value in items]


def requests(state: State, patient: str, candidates: Iterable[str]) -> list[dict[str, Any]]:
    found = [(p, r) for p in candidates if (r := state.request(patient, p)) is not None]
    return _by_status(found)


def grants(state: State, patient: str) -> list[dict[str, Any]]:
    found = [(g, v) for g in state.grantees(patient) if (v := state.grant(patient, g)) is not None]
    return _by_status(found)
