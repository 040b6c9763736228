"""Who may read, and whom a new version must be wrapped for (docs/architecture.md "Reading rules").

A policy is a named predicate over an ``Access``; ``AnyOf`` combines them and
raises ``NotAuthorised`` unless one allows, so an empty policy denies. Time is
always the block's (or the caller's) ``now_ms``, never the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ehrchain.core.types import Address
from ehrchain.ehr.errors import NotAuthorised, NotFound
from ehrchain.ehr.state import State
from ehrchain.ehr.values import ACTIVE, Version

__all__ = [
    "PATIENT_OR_DELEGATE",
    "READ",
    "Access",
    "AnyOf",
    "Rule",
    "can_read",
    "custodian_of",
    "has_covering_grant",
    "has_emergency_grant",
    "is_active_delegate",
    "is_custodian",
    "is_patient",
    "is_version_author",
    "readers_for_new_version",
    "wrapped_key_for",
]


@dataclass(frozen=True, slots=True)
class Access:
    """An actor wanting to act on a patient's data (optionally one record version) at a time."""

    state: State
    actor: Address
    patient: Address
    now_ms: int
    record_id: str = ""
    category: str = ""
    version: Version | None = None


Rule = Callable[[Access], bool]


def is_patient(a: Access) -> bool:
    return a.actor == a.patient


def is_custodian(a: Access) -> bool:
    return custodian_of(a.state, a.patient) == a.actor


def is_version_author(a: Access) -> bool:
    return a.version is not None and a.version.author == a.actor


def is_active_delegate(a: Access) -> bool:
    delegate = a.state.delegate(a.patient, a.actor)
    return delegate is not None and delegate.status == ACTIVE


def has_covering_grant(a: Access) -> bool:
    grant = a.state.grant(a.patient, a.actor)
    return (
        grant is not None
        and grant.active_at(a.now_ms)
        and grant.scope.covers(a.record_id or None, a.category)
    )


def has_emergency_grant(a: Access) -> bool:
    emergency = a.state.emergency(a.patient, a.actor)
    return emergency is not None and emergency.active_at(a.now_ms)


@dataclass(frozen=True, slots=True)
class AnyOf:
    """Allows when any rule allows; raises NotAuthorised(name) otherwise (and when empty)."""

    name: str
    rules: tuple[Rule, ...]

    def check(self, access: Access) -> None:
        for rule in self.rules:
            if rule(access):
                return
        raise NotAuthorised(self.name, f"{access.actor} for patient {access.patient}")


READ: Final = AnyOf(
    "record_read",
    (
        is_patient,
        is_version_author,
        has_covering_grant,
        is_active_delegate,
        has_emergency_grant,
        is_custodian,
    ),
)
"""record.read: patient, version author, covering grant, delegate, emergency, custodian."""

PATIENT_OR_DELEGATE: Final = AnyOf("patient_or_delegate", (is_patient, is_active_delegate))
"""access.deny / access.grant / access.revoke."""


def custodian_of(state: State, patient: str) -> Address | None:
    """The admin of the patient's hospital, who holds a wrapped key for every version."""
    registered = state.patient(patient)
    if registered is None:
        return None
    hospital = state.hospital(registered.hospital)
    return hospital.admin if hospital is not None else None


def readers_for_new_version(
    state: State,
    patient: Address,
    record_id: str | None,
    category: str,
    author: Address,
    now_ms: int,
) -> frozenset[Address]:
    """Exactly the addresses a new version must be wrapped for at ``now_ms``.

    The patient, the custodian, the writing author, every active delegate and
    every grantee whose active, unexpired grant covers (record_id, category).
    A revoked or expired grantee is never in the set, so a version written after
    a revocation uses a data key the revoked party never gets.
    """
    custodian = custodian_of(state, patient)
    if custodian is None:
        raise NotFound(f"patient {patient} is not registered")
    readers = {patient, custodian, author}
    for caregiver in state.delegates(patient):
        delegate = state.delegate(patient, caregiver)
        if delegate is not None and delegate.status == ACTIVE:
            readers.add(caregiver)
    for grantee in state.grantees(patient):
        grant = state.grant(patient, grantee)
        if (
            grant is not None
            and grant.active_at(now_ms)
            and grant.scope.covers(record_id, category)
        ):
            readers.add(grantee)
    return frozenset(readers)


def can_read(state: State, reader: Address, record_id: str, version: int, now_ms: int) -> None:
    """Raise NotFound for a missing version, NotAuthorised unless ``reader`` may read it."""
    record = state.record(record_id)
    if record is None:
        raise NotFound(f"record {record_id} does not exist")
    found = state.version(record_id, version) if 1 <= version <= record.latest else None
    if found is None:
        raise NotFound(f"record {record_id} has no version {version}")
    READ.check(Access(state, reader, record.patient, now_ms, record_id, record.category, found))


def wrapped_key_for(state: State, record_id: str, version: int, reader: str) -> bytes | None:
    """The reader's wrapped data key for a version: a later re-wrap first, else the original.

    This is a lookup, not a permission: the node serves a blob only after a
    committed or admitted ``record.read``, which ``can_read`` gates.
    """
    rewrapped = state.rewrap(record_id, version, reader)
    if rewrapped is not None:
        return rewrapped
    found = state.version(record_id, version)
    if found is None:
        return None
    return found.wrapped.get(Address(reader))
