"""Properties of the EHR state machine over random sequences of valid and invalid operations.

A small reference model of who holds which access route (grants, delegations,
emergencies) runs beside the real state. After every step:

(a) nothing is ever deleted: every key once written is still present;
(b) a replayed transaction (any already applied) is rejected and changes nothing;
(c) a reader revoked before version N is never in N's wrapped set, and a
    re-wrap for N reaches a reader only through a grant, delegation or
    emergency re-wrap naming that reader; can_read denies a revoked reader;
(d) can_read allows exactly the patient, custodian, version author, active
    delegates, grantees with an active covering grant and providers with an
    active emergency grant.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from ehr_world import DAY, HOUR, Actor, World, wrapped

from ehrchain.core.tx import Transaction
from ehrchain.core.types import Address
from ehrchain.ehr import policy
from ehrchain.ehr.errors import EhrError, MalformedPayload, NotAuthorised, WrongReaders
from ehrchain.ehr.kinds import PAYLOADS
from ehrchain.ehr.values import CATEGORIES

CATS = CATEGORIES[:3]


@dataclass
class Route:
    """The model's view of one (patient, reader) pair."""

    grant: tuple[str, frozenset[str], int] | None = None  # (kind, items, expires_ms)
    delegate: bool = False
    emergency_until: int = 0
    revoked: bool = False  # lost its last grant or delegation and not given one since


@dataclass
class Model:
    world: World
    custodian: Actor
    patients: list[Actor]
    providers: list[Actor]
    carer: Actor
    cast: list[Actor]
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    records: dict[str, tuple[str, str, list[str]]] = field(default_factory=dict)
    applied: list[Transaction] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def route(self, patient: str, reader: str) -> Route:
        return self.routes.setdefault((patient, reader), Route())

    def covers(self, route: Route, record_id: str, category: str, now: int) -> bool:
        if route.grant is None:
            return False
        kind, items, expires = route.grant
        if expires and now >= expires:
            return False
        return kind == "all" or (kind == "categories" and category in items) or record_id in items

    def expected_readers(
        self, patient: str, record_id: str, category: str, author: str
    ) -> set[str]:
        readers = {patient, self.custodian.address, author}
        for (p, x), route in self.routes.items():
            if p == patient and (
                route.delegate or self.covers(route, record_id, category, self.world.now)
            ):
                readers.add(x)
        return readers

    def may_read(self, reader: str, record_id: str, version: int, now: int | None = None) -> bool:
        patient, category, authors = self.records[record_id]
        if reader in (patient, self.custodian.address, authors[version - 1]):
            return True
        route = self.routes.get((patient, reader), Route())
        now = self.world.now if now is None else now
        return (
            route.delegate
            or self.covers(route, record_id, category, now)
            or now < route.emergency_until
        )


def _build() -> Model:
    world = World()
    hospital = world.hospital()
    patients = [world.patient(hospital), world.patient(hospital)]
    providers = [world.provider(hospital, f"LIC-{i}", verify=i < 2) for i in range(3)]
    carer = world.patient(hospital)
    cast = [*patients, *providers, carer, hospital]
    model = Model(world, hospital, patients, providers, carer, cast)
    model.seen = set(world.store) | set(world.state.writes)
    return model


OPS = st.lists(
    st.tuples(
        st.sampled_from(range(15)),  # operation
        st.sampled_from(range(7)),  # sender (mostly the one the kind expects)
        st.sampled_from(range(7)),  # other party
        st.sampled_from(range(2)),  # patient
        st.sampled_from(range(8)),  # variant: scope, expiry, re-wraps, a wrong reader
    ),
    min_size=10,
    max_size=40,
)


def _versions(m: Model, patient: str, variant: int) -> list[tuple[str, int]]:
    mine = [
        (rid, n)
        for rid, (p, _, a) in m.records.items()
        if p == patient
        for n in range(1, len(a) + 1)
    ]
    return mine[: variant % 3]


def _scope(m: Model, variant: int) -> dict[str, Any]:
    if variant % 3 == 0:
        return {"all": True}
    if variant % 3 == 1:
        return {"categories": [CATS[variant % len(CATS)]]}
    return {"records": sorted(m.records)[:1] or ["r" + "0" * 32]}


def _step(m: Model, op: tuple[int, int, int, int, int]) -> None:
    code, a, o, p, variant = op
    w = m.world
    patient = m.patients[p]
    actor, other = _sender(m, code, a, patient), _counterpart(m, code, o, patient)
    if code == 13:
        w.now += variant * 6 * HOUR
        return
    if code == 12:
        if m.applied:
            _check_replay(m, m.applied[variant % len(m.applied)])
        return
    kind, payload = _operation(m, code, actor, other, patient, variant)
    tx = w.tx(actor, kind, payload)
    before_writes = dict(w.state.writes)
    try:
        w.apply(tx)
    except EhrError as exc:
        assert dict(w.state.writes) == before_writes
        _check_expected_failure(m, kind, payload, actor, exc)
        return
    actor.nonce += 1
    m.applied.append(tx)
    _check_expected_success(m, kind, payload, actor)
    _update_model(m, kind, payload, actor, tx)
    _check_writes(m, tx, {k: v for k, v in w.state.writes.items() if before_writes.get(k) != v})


def _sender(m: Model, code: int, a: int, patient: Actor) -> Actor:
    """Mostly the sender the kind expects (so most operations are valid); sometimes anyone."""
    if a == 6:
        return m.cast[(a + code) % len(m.cast)]
    if code in (2, 7):
        return m.providers[a % 3]
    if code == 8:
        return m.custodian
    if code in (3, 4, 14) and a == 5:
        return m.carer
    if code in (9, 10):
        return (patient, m.providers[0], m.providers[1])[a % 3]
    if code == 11:
        return m.cast[a]
    return patient


def _counterpart(m: Model, code: int, o: int, patient: Actor) -> Actor:
    """Mostly someone the operation can apply to (a grantee to revoke...); sometimes anyone."""
    routes = [(x, r) for (p, x), r in m.routes.items() if p == patient.address]
    holders = {
        4: [x for x, r in routes if r.grant is not None],
        6: [x for x, r in routes if r.delegate],
        8: [x for x, r in routes if r.emergency_until > m.world.now],
    }.get(code, [])
    by_address: dict[str, Actor] = {actor.address: actor for actor in m.cast}
    if holders and o < 5:
        return by_address[holders[o % len(holders)]]
    if code in (0, 1, 3, 14) and o < 5:
        return m.providers[o % 3]
    return m.cast[o]


def _operation(
    m: Model, code: int, actor: Actor, other: Actor, patient: Actor, variant: int
) -> tuple[str, dict[str, Any]]:
    w = m.world
    on_behalf = {} if actor is patient else {"patient": patient.address}
    rewraps = [[rid, n, wrapped()] for rid, n in _versions(m, patient.address, variant)]
    if code == 0:
        return "consent.authorise", {"provider": other.address}
    if code == 1:
        return "consent.withdraw", {"provider": other.address}
    if code == 2:
        return "access.request", {"patient": patient.address, "scope": _scope(m, variant)}
    if code == 3:
        expires = 0 if variant < 3 else w.now + variant * HOUR
        grant = {"grantee": other.address, "scope": _scope(m, variant), "expires_ms": expires}
        return "access.grant", {**grant, "rewraps": rewraps, **on_behalf}
    if code == 4:
        return "access.revoke", {"grantee": other.address, **on_behalf}
    if code == 5:
        return "delegate.add", {"caregiver": other.address, "rewraps": rewraps}
    if code == 6:
        return "delegate.remove", {"caregiver": other.address}
    if code == 7:
        return "access.break_glass", {
            "patient": patient.address,
            "reason_code": "other",
            "reason": b"c",
        }
    if code == 8:
        return "keys.rewrap", {
            "patient": patient.address,
            "grantee": other.address,
            "rewraps": rewraps,
        }
    if code in (9, 10):
        return _record_op(m, code, actor, other, patient, variant)
    if code == 11 and m.records:
        rid = sorted(m.records)[variant % len(m.records)]
        version = 1 + variant % len(m.records[rid][2])
        return "record.read", {"record_id": rid, "version": version}
    return "access.deny", {"provider": other.address, **on_behalf}


def _record_op(
    m: Model, code: int, actor: Actor, other: Actor, patient: Actor, variant: int
) -> tuple[str, dict[str, Any]]:
    """record.create / record.amend, wrapped for the policy's readers, sometimes one off."""
    w = m.world
    category = CATS[variant % len(CATS)]
    if code == 10 and m.records:
        rid = sorted(m.records)[variant % len(m.records)]
        record_patient = m.records[rid][0]
        readers = policy.readers_for_new_version(
            w.state, Address(record_patient), rid, m.records[rid][1], actor.address, w.now
        )
        payload = w.amend_payload(actor, rid, _skew(readers, other, variant))
        return "record.amend", payload
    new_readers = w.readers(patient, actor, category, _next_id(actor))
    payload = w.record_payload(actor, patient, category, _skew(new_readers, other, variant))
    return "record.create", payload


def _next_id(actor: Actor) -> str:
    from ehrchain.ehr.kinds import record_id_for

    return record_id_for("ehr-test", actor.address, actor.nonce)


def _skew(readers: Iterable[str], other: Actor, variant: int) -> set[str]:
    if variant == 7:
        return set(readers) ^ {other.address}
    return set(readers)


def _check_expected_failure(
    m: Model, kind: str, payload: dict[str, Any], actor: Actor, exc: EhrError
) -> None:
    if kind == "record.read":
        assert not m.may_read(actor.address, payload["record_id"], payload["version"])
        assert isinstance(exc, NotAuthorised)


def _check_expected_success(m: Model, kind: str, payload: dict[str, Any], actor: Actor) -> None:
    if kind == "record.read":
        assert m.may_read(actor.address, payload["record_id"], payload["version"])
    if kind in ("record.create", "record.amend"):
        rid = payload["record_id"]
        patient, category = (
            (m.records[rid][0], m.records[rid][1])
            if kind == "record.amend"
            else (payload.get("patient", actor.address), payload["category"])
        )
        expected = m.expected_readers(patient, rid, category, actor.address)
        assert set(payload["wrapped"]) == expected
        for (p, x), route in m.routes.items():  # (c): revoked readers get no key
            if (
                p == patient
                and route.revoked
                and x not in (patient, m.custodian.address, actor.address)
            ):
                assert x not in payload["wrapped"]


def _update_model(
    m: Model, kind: str, payload: dict[str, Any], actor: Actor, tx: Transaction
) -> None:
    w = m.world
    patient = payload.get("patient", actor.address)
    if kind == "access.grant":
        scope = payload["scope"]
        which = next(iter(scope))
        items = frozenset() if which == "all" else frozenset(scope[which])
        route = m.route(patient, payload["grantee"])
        route.grant, route.revoked = (which, items, payload["expires_ms"]), False
    elif kind == "access.revoke":
        route = m.route(patient, payload["grantee"])
        route.grant, route.revoked = None, not route.delegate  # a delegate still reads
    elif kind == "delegate.add":
        route = m.route(actor.address, payload["caregiver"])
        route.delegate, route.revoked = True, False
    elif kind == "delegate.remove":
        route = m.route(actor.address, payload["caregiver"])
        route.delegate, route.revoked = False, route.grant is None  # a grantee still reads
    elif kind == "access.break_glass":
        m.route(payload["patient"], actor.address).emergency_until = w.now + DAY
    elif kind == "record.create":
        m.records[payload["record_id"]] = (patient, payload["category"], [actor.address])
    elif kind == "record.amend":
        m.records[payload["record_id"]][2].append(actor.address)


def _check_writes(m: Model, tx: Transaction, changed: dict[str, bytes | None]) -> None:
    """(a) no deletion; (c) re-wraps only reach the reader the transaction names."""
    assert all(value is not None for value in changed.values())
    for key in changed:
        if key.startswith("rewrap/"):
            reader = key.rsplit("/", 1)[1]
            named = tx.payload.get("grantee", tx.payload.get("caregiver"))
            assert tx.kind in ("access.grant", "delegate.add", "keys.rewrap")
            assert reader == named
    m.seen |= set(changed)
    assert all(m.world.state.get(key) is not None for key in m.seen)


def _check_replay(m: Model, tx: Transaction) -> None:
    """(b) an applied transaction never applies again."""
    w = m.world
    before = (dict(w.state.writes), w.state.events)
    try:
        w.apply(tx)
    except EhrError:
        assert (dict(w.state.writes), w.state.events) == before
        return
    raise AssertionError(f"replayed {tx.kind} was accepted")


def _check_reads(m: Model) -> None:
    """(d) can_read agrees with the model for every cast member and version, now and later."""
    w = m.world
    for rid, (_, _, authors) in m.records.items():
        for version, reader, later in itertools.product(
            range(1, len(authors) + 1), m.cast, (0, 7 * HOUR, DAY)
        ):
            expected = m.may_read(reader.address, rid, version, w.now + later)
            try:
                policy.can_read(w.state, reader.address, rid, version, w.now + later)
                allowed = True
            except NotAuthorised:
                allowed = False
            assert allowed == expected, (reader.address, rid, version, later)
            route = m.routes.get((m.records[rid][0], reader.address), Route())
            if route.revoked and reader.address not in (m.custodian.address, *authors):
                assert not allowed or route.emergency_until > w.now + later  # (c)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(OPS)
def test_random_operations_keep_the_invariants(ops: list[tuple[int, int, int, int, int]]) -> None:
    m = _build()
    for op in ops:
        _step(m, op)
        _check_reads(m)
    for tx in m.applied:
        _check_replay(m, tx)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_a_wrong_reader_set_is_always_refused(ops: list[tuple[int, int, int, int, int]]) -> None:
    m = _build()
    for op in ops:
        _step(m, op)
    w = m.world
    patient = m.patients[0]
    readers = set(w.readers(patient, patient, "general", _next_id(patient)))
    for outsider in m.cast:
        skewed = readers ^ {outsider.address}
        payload = w.record_payload(patient, patient, "general", skewed)
        before = dict(w.state.writes)
        try:
            w.apply(w.tx(patient, "record.create", payload))
        except WrongReaders:
            assert dict(w.state.writes) == before
            continue
        raise AssertionError("a create with the wrong readers was accepted")


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=40) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(PAYLOADS)), st.data())
def test_any_payload_parses_or_is_named_malformed(kind: str, data: st.DataObject) -> None:
    """Whatever a client sends, parsing either succeeds or raises MalformedPayload."""
    names = sorted(SAMPLE_FIELDS[kind])
    keys = st.sampled_from([*names, "extra"])
    payload = data.draw(
        st.dictionaries(keys, VALUES | st.sampled_from(_good_values()), max_size=14)
    )
    error: MalformedPayload | None = None
    try:
        PAYLOADS[kind].from_payload(payload)
    except MalformedPayload as exc:
        error = exc
    if error is not None:
        assert error.field.split(".")[0] in (*names, "extra", "payload", "<unknown>")


SAMPLE_FIELDS: dict[str, tuple[str, ...]] = {
    "hospital.admit": ("hospital_id", "name", "admin"),
    "validator.add": ("address", "signing_key"),
    "validator.remove": ("address",),
    "validator.evidence": ("offender", "height", "proof"),
    "patient.register": ("address", "signing_key", "encryption_key"),
    "provider.register": ("address", "signing_key", "encryption_key", "licence"),
    "provider.verify": ("provider",),
    "key.rotate": ("signing_key", "encryption_key"),
    "consent.authorise": ("provider",),
    "consent.withdraw": ("provider",),
    "access.request": ("patient", "scope"),
    "access.deny": ("provider", "patient"),
    "access.grant": ("grantee", "scope", "expires_ms", "rewraps", "patient"),
    "access.revoke": ("grantee", "patient"),
    "delegate.add": ("caregiver", "rewraps"),
    "delegate.remove": ("caregiver",),
    "access.break_glass": ("patient", "reason_code", "reason"),
    "keys.rewrap": ("patient", "grantee", "rewraps"),
    "record.create": (
        "record_id", "category", "kind", "resource_type", "media_type", "fhir_version", "cid",
        "size", "commitment", "epoch", "wrapped", "patient",
    ),
    "record.read": ("record_id", "version"),
}  # fmt: skip
SAMPLE_FIELDS["record.amend"] = (*SAMPLE_FIELDS["record.create"], "version")
_ACTOR = Actor.new()


def _good_values() -> list[Any]:
    """Values that pass some field's check, so parsing gets past the first field."""
    rid = "r" + "ab" * 16
    return [
        _ACTOR.address,
        _ACTOR.key.public_key,
        _ACTOR.enc,
        {"all": True},
        {"categories": ["imaging"]},
        [[rid, 1, b"k"]],
        {_ACTOR.address: b"k"},
        rid,
        "laboratory",
        "fhir",
        "4.0.1",
        "application/fhir+json",
        bytes(32),
        "unconscious",
        "NPI-123",
        3,
        {"address": _ACTOR.address, "signing_key": _ACTOR.key.public_key},
    ]
