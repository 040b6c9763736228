"""EHR state: a read-only committed store plus an overlay of this block's writes.

The committed store is anything with ``get(key) -> bytes | None`` (the SQLite
ledger through ``LedgerReader``, a plain dict in tests). ``State`` layers the
writes of the block so far over it and decodes values into the frozen
dataclasses of ``ehr.values``. Transitions never mutate a State: a rule returns
``Effects`` and ``State.updated`` builds the next State. A State memoises
decoded values in ``cache``; the memo is invisible from outside because a key's
decoded value changes only through ``updated``, which refreshes it.

Keys are those of docs/architecture.md, plus two append-only indexes the
reading rules need because a key/value store cannot be scanned by prefix:
``grantees/{patient}`` and ``delegates/{patient}`` (every address that ever got
a grant / a delegation), and ``signer/{hex(signing_key)}`` (the account that
uses or used a signing key, so no key is ever used by two accounts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeVar, cast, runtime_checkable

import cbor2

from ehrchain.core import encoding
from ehrchain.core.errors import EncodingError
from ehrchain.core.types import Address, ChainId
from ehrchain.ehr.values import (
    Account,
    Consent,
    Delegate,
    Emergency,
    Grant,
    Hospital,
    Patient,
    Provider,
    Record,
    Request,
    Version,
)

__all__ = [
    "POW_TARGET_KEY",
    "STATE_DOMAIN",
    "VALIDATORS_KEY",
    "BatchStateReader",
    "BlockContext",
    "Changes",
    "Effects",
    "Event",
    "EvidenceCheck",
    "Ledger",
    "LedgerReader",
    "State",
    "StateReader",
    "acct_key",
    "consent_key",
    "delegate_key",
    "delegates_key",
    "emergency_key",
    "epoch_key",
    "evidence_key",
    "grant_key",
    "grantees_key",
    "hospital_key",
    "licence_key",
    "nonce_key",
    "patient_key",
    "provider_key",
    "record_key",
    "request_key",
    "rewrap_key",
    "signer_key",
    "state_root",
    "version_key",
]

STATE_DOMAIN: Final = "ehrchain/state/v1"
VALIDATORS_KEY: Final = "validators"
POW_TARGET_KEY: Final = "pow_target_bits"
"""Set at genesis on proof-of-work chains only; no transaction writes it."""

T = TypeVar("T")
_MISSING: Final = object()


class StateReader(Protocol):
    """The committed state: value bytes by key, None when the key was never written."""

    def get(self, key: str) -> bytes | None: ...


@runtime_checkable
class BatchStateReader(StateReader, Protocol):
    """A reader that can fetch many keys in one round trip (the executor prefetches)."""

    def get_many(self, keys: Iterable[str]) -> Mapping[str, bytes | None]: ...


class Ledger(Protocol):
    """The part of storage.ledger the state machine reads."""

    def get_state(self, key: str) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class LedgerReader:
    """Adapts a ledger's ``get_state`` to ``StateReader``."""

    ledger: Ledger

    def get(self, key: str) -> bytes | None:
        return self.ledger.get_state(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes | None]:
        batch = getattr(self.ledger, "get_many", None)
        if batch is not None:
            return dict(batch(list(keys)))
        return {key: self.ledger.get_state(key) for key in keys}


@dataclass(frozen=True, slots=True)
class Event:
    """An audit event; ``subject`` is the patient (or the account) it concerns.

    The shape of ``storage.rows.Event``: ``record_id`` is "" and ``version`` 0
    when the transaction is not about one record version.
    """

    subject: str
    kind: str
    actor: str
    record_id: str
    version: int
    tx_id: bytes


class EvidenceCheck(Protocol):
    """Decide whether ``proof`` shows a validator of ``validators`` misbehaving.

    Returns the offender and the height of the misbehaviour; raises ValueError
    when the proof proves nothing.
    """

    def __call__(
        self, proof: bytes, validators: Mapping[Address, bytes]
    ) -> tuple[Address, int]: ...


@dataclass(frozen=True, slots=True)
class BlockContext:
    """What a transaction may know about the block it executes in."""

    chain_id: ChainId
    height: int
    timestamp_ms: int
    proposer: Address
    evidence_check: EvidenceCheck | None = None
    """The consensus engine's judge of misbehaviour proofs (``validator.evidence``);
    None where the engine takes none. The rules never look inside a proof."""


@dataclass(frozen=True, slots=True)
class Effects:
    """The writes and events of one transaction; ``decoded`` holds the written objects."""

    writes: Mapping[str, bytes]
    events: tuple[Event, ...]
    decoded: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


class Changes:
    """A rule's local builder for Effects; never deletes, only puts."""

    __slots__ = ("decoded", "events", "writes")

    def __init__(self) -> None:
        self.writes: dict[str, bytes] = {}
        self.decoded: dict[str, Any] = {}
        self.events: list[Event] = []

    def put(self, key: str, value: Any) -> None:
        """Write a value object (with ``to_value``) or a plain int/str/bytes/tuple."""
        to_value = getattr(value, "to_value", None)
        self.writes[key] = encoding.encode(to_value() if to_value is not None else value)
        self.decoded[key] = value

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def effects(self) -> Effects:
        return Effects(self.writes, tuple(self.events), self.decoded)


def _decode(raw: bytes) -> Any:
    """Decode a stored value; state values were produced by ``encoding.encode``."""
    if not raw or raw[0] != encoding.VERSION:
        raise EncodingError("stored state value lacks the encoding version byte")
    return cbor2.loads(raw[1:])


def _tuple(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_tuple(v) for v in value)
    return value


# Keys -----------------------------------------------------------------------


def evidence_key(offender: str, height: int) -> str:
    return f"evidence/{offender}/{height:020d}"


def acct_key(address: str) -> str:
    return f"acct/{address}"


def nonce_key(address: str) -> str:
    return f"nonce/{address}"


def signer_key(signing_key: bytes) -> str:
    return f"signer/{signing_key.hex()}"


def hospital_key(hospital_id: str) -> str:
    return f"hospital/{hospital_id}"


def patient_key(address: str) -> str:
    return f"patient/{address}"


def provider_key(address: str) -> str:
    return f"provider/{address}"


def licence_key(licence: str) -> str:
    return f"licence/{licence}"


def record_key(record_id: str) -> str:
    return f"record/{record_id}"


def version_key(record_id: str, version: int) -> str:
    return f"version/{record_id}/{version}"


def rewrap_key(record_id: str, version: int, reader: str) -> str:
    return f"rewrap/{record_id}/{version}/{reader}"


def consent_key(patient: str, provider: str) -> str:
    return f"consent/{patient}/{provider}"


def request_key(patient: str, provider: str) -> str:
    return f"request/{patient}/{provider}"


def grant_key(patient: str, grantee: str) -> str:
    return f"grant/{patient}/{grantee}"


def delegate_key(patient: str, caregiver: str) -> str:
    return f"delegate/{patient}/{caregiver}"


def epoch_key(patient: str) -> str:
    return f"epoch/{patient}"


def emergency_key(patient: str, provider: str) -> str:
    return f"emergency/{patient}/{provider}"


def grantees_key(patient: str) -> str:
    return f"grantees/{patient}"


def delegates_key(patient: str) -> str:
    return f"delegates/{patient}"


# State ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class State:
    """Committed state plus this block's writes and events so far."""

    reader: StateReader
    writes: Mapping[str, bytes | None] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def get(self, key: str) -> bytes | None:
        raw = self.writes.get(key, _MISSING)
        if raw is _MISSING:
            return self.reader.get(key)
        return cast("bytes | None", raw)

    def updated(self, effects: Effects) -> State:
        """The state after ``effects``; this State is left as it was."""
        writes = {**self.writes, **effects.writes}
        cache = {k: v for k, v in self.cache.items() if k not in effects.writes}
        cache.update(effects.decoded)
        return State(self.reader, writes, self.events + effects.events, cache)

    def _load(self, key: str, build: Callable[[Any], T]) -> T | None:
        cache = self.cache
        if key in cache:
            return cast("T | None", cache[key])
        raw = self.get(key)
        value = None if raw is None else build(_decode(raw))
        cache[key] = value
        return value

    def account(self, address: str) -> Account | None:
        return self._load(acct_key(address), Account.from_value)

    def nonce(self, address: str) -> int:
        """The sender's next expected nonce (0 for an account that never sent)."""
        return self._load(nonce_key(address), int) or 0

    def signer(self, signing_key: bytes) -> Address | None:
        return self._load(signer_key(signing_key), Address)

    def hospital(self, hospital_id: str) -> Hospital | None:
        return self._load(hospital_key(hospital_id), Hospital.from_value)

    def patient(self, address: str) -> Patient | None:
        return self._load(patient_key(address), Patient.from_value)

    def provider(self, address: str) -> Provider | None:
        return self._load(provider_key(address), Provider.from_value)

    def licence_holder(self, licence: str) -> Address | None:
        return self._load(licence_key(licence), Address)

    def evidence(self, offender: str, height: int) -> tuple[Address, bytes] | None:
        """(reporter, tx id) of the recorded misbehaviour of ``offender`` at ``height``."""
        return self._load(evidence_key(offender, height), _tuple)

    def validators(self) -> tuple[tuple[Address, bytes], ...]:
        return self._load(VALIDATORS_KEY, _tuple) or ()

    def record(self, record_id: str) -> Record | None:
        return self._load(record_key(record_id), Record.from_value)

    def version(self, record_id: str, version: int) -> Version | None:
        return self._load(version_key(record_id, version), Version.from_value)

    def rewrap(self, record_id: str, version: int, reader: str) -> bytes | None:
        return self._load(rewrap_key(record_id, version, reader), bytes)

    def consent(self, patient: str, provider: str) -> Consent | None:
        return self._load(consent_key(patient, provider), Consent.from_value)

    def request(self, patient: str, provider: str) -> Request | None:
        return self._load(request_key(patient, provider), Request.from_value)

    def grant(self, patient: str, grantee: str) -> Grant | None:
        return self._load(grant_key(patient, grantee), Grant.from_value)

    def delegate(self, patient: str, caregiver: str) -> Delegate | None:
        return self._load(delegate_key(patient, caregiver), Delegate.from_value)

    def epoch(self, patient: str) -> int:
        return self._load(epoch_key(patient), int) or 0

    def emergency(self, patient: str, provider: str) -> Emergency | None:
        return self._load(emergency_key(patient, provider), Emergency.from_value)

    def grantees(self, patient: str) -> tuple[Address, ...]:
        """Every address that ever held a grant from the patient (active or not)."""
        return self._load(grantees_key(patient), _tuple) or ()

    def delegates(self, patient: str) -> tuple[Address, ...]:
        """Every address that was ever the patient's delegate (active or not)."""
        return self._load(delegates_key(patient), _tuple) or ()

    def is_validator(self, address: str) -> bool:
        return any(a == address for a, _ in self.validators())


def state_root(prev_root: bytes, writes: Mapping[str, bytes | None]) -> bytes:
    """tagged_hash("ehrchain/state/v1", [prev_root, sorted [key, value] pairs])."""
    pairs = [[key, writes[key]] for key in sorted(writes)]
    return encoding.tagged_hash(STATE_DOMAIN, [prev_root, pairs])
