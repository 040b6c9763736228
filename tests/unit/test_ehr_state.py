"""EHR state: overlay reads, immutable updates, typed accessors, the state root."""

from __future__ import annotations

import hashlib
import importlib

import pytest
from ehr_world import clinic

from ehrchain.core import encoding
from ehrchain.core.errors import EncodingError
from ehrchain.ehr.state import (
    Changes,
    Effects,
    Event,
    LedgerReader,
    State,
    acct_key,
    state_root,
)
from ehrchain.ehr.values import Account, Grant, Scope

ACCOUNT = Account("patient", b"s" * 32, b"e" * 32, "h1")


def test_overlay_wins_over_the_committed_store() -> None:
    store = {"a": b"committed", "b": b"committed"}
    state = State(store, {"a": b"written"})
    assert state.get("a") == b"written"
    assert state.get("b") == b"committed"
    assert state.get("c") is None


def test_updated_returns_a_new_state_and_leaves_the_old_one() -> None:
    store: dict[str, bytes] = {}
    state = State(store)
    assert state.account("ehr1x") is None  # memoised as absent
    out = Changes()
    out.put(acct_key("ehr1x"), ACCOUNT)
    out.emit(Event("ehr1x", "k", "ehr1y", "", 0, b"t"))
    after = state.updated(out.effects())
    assert after.account("ehr1x") == ACCOUNT
    assert state.account("ehr1x") is None
    assert state.writes == {}
    assert state.events == ()
    assert after.events == (Event("ehr1x", "k", "ehr1y", "", 0, b"t"),)
    assert store == {}


def test_updated_refreshes_values_that_effects_wrote_without_decoded_objects() -> None:
    state = State({})
    assert state.nonce("ehr1x") == 0
    after = state.updated(Effects({"nonce/ehr1x": encoding.encode(4)}, ()))
    assert after.nonce("ehr1x") == 4


def test_values_are_canonical_encodings_that_round_trip() -> None:
    out = Changes()
    grant = Grant(Scope(categories=frozenset({"imaging", "allergy"})), 5, "active")
    out.put("grant/p/g", grant)
    raw = out.writes["grant/p/g"]
    assert raw == encoding.encode(
        {"scope": {"categories": ["allergy", "imaging"]}, "expires_ms": 5, "status": "active"}
    )
    assert encoding.decode(raw)["status"] == "active"
    assert State({"grant/p/g": raw}).grant("p", "g") == grant


def test_a_stored_value_without_the_version_byte_is_refused() -> None:
    with pytest.raises(EncodingError):
        State({acct_key("x"): b"\xa0"}).account("x")


def test_accessors_default_for_absent_keys() -> None:
    state = State({})
    assert state.nonce("x") == 0
    assert state.epoch("x") == 0
    assert state.validators() == ()
    assert state.grantees("x") == ()
    assert state.delegates("x") == ()
    for accessor in (state.patient, state.provider, state.account, state.record):
        assert accessor("x") is None


def test_state_root_is_the_contract_formula() -> None:
    prev = bytes(range(32))
    writes: dict[str, bytes | None] = {"b": b"2", "a": b"1", "c": None}
    expected = hashlib.sha256(
        b"ehrchain/state/v1\x00" + encoding.encode([prev, [["a", b"1"], ["b", b"2"], ["c", None]]])
    ).digest()
    assert state_root(prev, writes) == expected
    assert state_root(prev, dict(reversed(list(writes.items())))) == expected
    assert state_root(bytes(32), writes) != expected
    assert state_root(prev, {**writes, "a": b"x"}) != expected


class _Ledger:
    """The two storage.ledger methods the adapter uses (storage has its own tests)."""

    def __init__(self, data: dict[str, bytes]) -> None:
        self.data = data
        self.batches: list[list[str]] = []

    def get_state(self, key: str) -> bytes | None:
        return self.data.get(key)

    def get_many(self, keys: list[str]) -> dict[str, bytes | None]:
        self.batches.append(list(keys))
        return {k: self.data.get(k) for k in keys}


def test_ledger_reader_adapts_get_state_and_get_many() -> None:
    ledger = _Ledger({"a": b"1"})
    reader = LedgerReader(ledger)
    assert reader.get("a") == b"1"
    assert reader.get("b") is None
    assert reader.get_many(["a", "b"]) == {"a": b"1", "b": None}
    assert ledger.batches == [["a", "b"]]


def test_world_state_is_readable_through_the_adapter() -> None:
    c = clinic()
    store = {**c.world.store, **{k: v for k, v in c.world.state.writes.items() if v is not None}}
    state = State(LedgerReader(_Ledger(store)))
    assert state.patient(c.patient.address) == c.world.state.patient(c.patient.address)
    assert state.is_validator(c.world.validator.address)


@pytest.mark.parametrize("module", ["state", "kinds", "rules", "policy", "executor", "genesis"])
def test_public_surface_exists(module: str) -> None:
    mod = importlib.import_module(f"ehrchain.ehr.{module}")
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert missing == []
