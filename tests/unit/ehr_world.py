"""A small in-memory EHR chain for tests: real keys, real signed transactions, a dict as store.

A plain dict is the committed store (the test double of the SQLite ledger,
which has its own tests); every transaction goes through ``rules.apply_tx``.
Wrapped keys and reasons are random bytes: the crypto is tested elsewhere and
the state machine treats them as opaque.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from ehrchain.consensus.wire import evidence_check
from ehrchain.core import tx as txmod
from ehrchain.core.address import address_from_public_key
from ehrchain.core.cid import cid_of
from ehrchain.core.tx import Transaction
from ehrchain.core.types import Address, ChainId
from ehrchain.crypto.hpke import EncryptionKey
from ehrchain.crypto.signing import SigningKey
from ehrchain.ehr import policy
from ehrchain.ehr.errors import EhrError
from ehrchain.ehr.genesis import GenesisConfig, genesis_writes
from ehrchain.ehr.kinds import record_id_for
from ehrchain.ehr.rules import apply_tx
from ehrchain.ehr.state import BlockContext, State

CHAIN = "ehr-test"
T0 = 1_700_000_000_000
HOUR = 3_600_000
DAY = 24 * HOUR


@dataclass
class Actor:
    key: SigningKey
    enc: bytes
    address: Address
    nonce: int = 0

    @classmethod
    def new(cls) -> Actor:
        key = SigningKey.generate()
        enc = EncryptionKey.generate().public_key
        return cls(key, enc, address_from_public_key(key.public_key))

    def account_payload(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "signing_key": self.key.public_key,
            "encryption_key": self.enc,
        }


def wrapped() -> bytes:
    return os.urandom(80)


@dataclass
class World:
    """Genesis plus helpers to register people and send transactions."""

    admin: Actor = field(default_factory=Actor.new)
    validator: Actor = field(default_factory=Actor.new)
    now: int = T0
    store: dict[str, bytes] = field(default_factory=dict)
    state: State = field(init=False)
    _hospitals: int = 0

    def __post_init__(self) -> None:
        config = GenesisConfig(
            CHAIN,
            T0,
            (self.admin.address, self.admin.key.public_key, self.admin.enc),
            ((self.validator.address, self.validator.key.public_key, self.validator.enc),),
        )
        self.store.update(genesis_writes(config))
        self.state = State(self.store)

    def ctx(self) -> BlockContext:
        return BlockContext(ChainId(CHAIN), 1, self.now, self.validator.address, evidence_check)

    def tx(
        self,
        actor: Actor,
        kind: str,
        payload: dict[str, Any],
        nonce: int | None = None,
        chain: str = CHAIN,
    ) -> Transaction:
        return txmod.build(
            kind, chain, actor.address, actor.nonce if nonce is None else nonce, payload, actor.key
        )

    def send(self, actor: Actor, kind: str, payload: dict[str, Any]) -> Transaction:
        """Apply a transaction that must succeed; the actor's nonce moves on."""
        tx = self.tx(actor, kind, payload)
        self.state = apply_tx(self.state, tx, self.ctx())
        actor.nonce += 1
        return tx

    def apply(self, tx: Transaction) -> None:
        self.state = apply_tx(self.state, tx, self.ctx())

    def reject(
        self,
        actor: Actor,
        kind: str,
        payload: dict[str, Any],
        error: type[EhrError],
        nonce: int | None = None,
    ) -> EhrError:
        """Apply a transaction that must fail with ``error`` and leave the state as it was."""
        return self.reject_tx(self.tx(actor, kind, payload, nonce), error)

    def reject_tx(self, tx: Transaction, error: type[EhrError]) -> EhrError:
        before = (dict(self.state.writes), self.state.events)
        with pytest.raises(error) as caught:
            self.state = apply_tx(self.state, tx, self.ctx())
        assert (dict(self.state.writes), self.state.events) == before
        return caught.value

    # People ---------------------------------------------------------------

    def hospital(self, hospital_id: str | None = None) -> Actor:
        self._hospitals += 1
        hospital_id = hospital_id or f"h{self._hospitals}"
        admin = Actor.new()
        payload = {"hospital_id": hospital_id, "name": "General", "admin": admin.account_payload()}
        self.send(self.admin, "hospital.admit", payload)
        return admin

    def patient(self, hospital_admin: Actor) -> Actor:
        patient = Actor.new()
        self.send(hospital_admin, "patient.register", patient.account_payload())
        return patient

    def provider(self, hospital_admin: Actor, licence: str, verify: bool = True) -> Actor:
        provider = Actor.new()
        payload = {**provider.account_payload(), "licence": licence}
        self.send(hospital_admin, "provider.register", payload)
        if verify:
            self.send(self.validator, "provider.verify", {"provider": provider.address})
        return provider

    # Records --------------------------------------------------------------

    def readers(
        self, patient: Actor, author: Actor, category: str, record_id: str | None = None
    ) -> frozenset[Address]:
        return policy.readers_for_new_version(
            self.state, patient.address, record_id, category, author.address, self.now
        )

    def record_payload(
        self,
        author: Actor,
        patient: Actor,
        category: str = "laboratory",
        readers: Iterable[str] | None = None,
        record_id: str | None = None,
        epoch: int | None = None,
    ) -> dict[str, Any]:
        rid = record_id or record_id_for(CHAIN, author.address, author.nonce)
        if readers is None:
            readers = self.readers(patient, author, category, rid)
        payload: dict[str, Any] = {
            "record_id": rid,
            "category": category,
            "kind": "fhir",
            "resource_type": "Observation",
            "media_type": "application/fhir+json",
            "fhir_version": "4.0.1",
            "cid": cid_of(os.urandom(16)),
            "size": 1234,
            "commitment": os.urandom(32),
            "epoch": self.state.epoch(patient.address) if epoch is None else epoch,
            "wrapped": {r: wrapped() for r in readers},
        }
        if author is not patient:
            payload["patient"] = patient.address
        return payload

    def create_record(self, author: Actor, patient: Actor, category: str = "laboratory") -> str:
        payload = self.record_payload(author, patient, category)
        self.send(author, "record.create", payload)
        return str(payload["record_id"])

    def amend_payload(
        self, author: Actor, record_id: str, readers: Iterable[str] | None = None
    ) -> dict[str, Any]:
        record = self.state.record(record_id)
        assert record is not None
        patient = record.patient
        if readers is None:
            readers = policy.readers_for_new_version(
                self.state, patient, record_id, record.category, author.address, self.now
            )
        payload = {
            "record_id": record_id,
            "version": record.latest + 1,
            "category": record.category,
            "kind": record.kind,
            "resource_type": record.resource_type,
            "media_type": "application/fhir+json",
            "fhir_version": "4.0.1",
            "cid": cid_of(os.urandom(16)),
            "size": 99,
            "commitment": os.urandom(32),
            "epoch": self.state.epoch(patient),
            "wrapped": {r: wrapped() for r in readers},
        }
        return payload

    def read(self, actor: Actor, record_id: str, version: int = 1) -> Transaction:
        return self.send(actor, "record.read", {"record_id": record_id, "version": version})


@dataclass
class Clinic:
    """A world with one hospital, one patient and two verified providers."""

    world: World
    hospital: Actor
    patient: Actor
    doctor: Actor
    other: Actor


def clinic() -> Clinic:
    world = World()
    hospital = world.hospital()
    patient = world.patient(hospital)
    doctor = world.provider(hospital, "LIC-001")
    other = world.provider(hospital, "LIC-002")
    return Clinic(world, hospital, patient, doctor, other)
