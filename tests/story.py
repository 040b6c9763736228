"""A small, realistic consortium written onto a node through its public building blocks.

``build_story`` admits a hospital, registers two patients and two providers,
has them write FHIR records (HL7's example resources) and a PDF discharge
summary, grants the second provider access and has that provider read a
record, sealing each phase into its own block. Transactions are signed with
``core.tx.build`` and every version is encrypted client-side with
``ehr.records.seal_version``, exactly as a client would.

The same story runs against an in-process ``NodeService`` (``LocalNode``) or a
real node process over HTTP (``HttpNode``). It keeps every plaintext it wrote,
so tests can look for it where it must not be, and every signed transaction by
a label, so tests can find its bytes on disk.

Import it from a test as ``from story import ...`` (``tests/`` is on
``sys.path`` through the rootless ``tests/conftest.py``).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from ehrchain.core import encoding
from ehrchain.core import tx as txmod
from ehrchain.core.types import Address
from ehrchain.crypto.keystore import Identity, KdfParams
from ehrchain.ehr.examples import demo_examples
from ehrchain.ehr.fhir import FHIR_MEDIA_TYPE
from ehrchain.ehr.kinds import record_id_for
from ehrchain.ehr.records import (
    SealedVersion,
    open_version,
    prepare_document,
    prepare_fhir,
    rewrap,
    seal_version,
)
from ehrchain.node.service import NodeService
from ehrchain.node.settings import load
from ehrchain.node.setup import init_node, new_identity
from ehrchain.node.wiring import open_service


class StoryError(AssertionError):
    """The node refused or lost a step of the story."""


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What a signed ``record.read`` unlocked."""

    cid: str
    commitment: bytes
    blob: bytes
    wrapped_key: bytes


class Node(Protocol):
    """The few node operations a client needs; one in-process, one over HTTP."""

    chain_id: str

    def submit(self, txs: Sequence[txmod.Transaction]) -> None: ...
    def seal(self) -> None: ...
    def put_blob(self, blob: bytes) -> str: ...
    def readers(
        self, patient: str, category: str, author: str, record_id: str
    ) -> tuple[int, dict[str, bytes]]: ...
    def read(self, tx: txmod.Transaction) -> ReadResult: ...
    def position(self, tx_id: bytes) -> tuple[int, int]: ...


# -- nodes -------------------------------------------------------------------


class LocalNode:
    """A ``NodeService`` in this process; ``seal`` mines the pending pool now."""

    def __init__(self, service: NodeService) -> None:
        self.service = service
        self.chain_id = str(service.chain_id)
        self._unsealed: list[bytes] = []

    def submit(self, txs: Sequence[txmod.Transaction]) -> None:
        results = self.service.submit_many([t.to_bytes() for t in txs])
        for t, (tx_id, error) in zip(txs, results, strict=True):
            if error is not None or tx_id is None:
                raise StoryError(f"{t.kind} refused: {error!r}")
            self._unsealed.append(tx_id)

    def seal(self) -> None:
        self.service.mine()
        for tx_id in self._unsealed:
            if self.service.tx(tx_id) is None:
                raise StoryError(f"transaction {tx_id.hex()} was not committed")
        self._unsealed.clear()

    def put_blob(self, blob: bytes) -> str:
        return self.service.put_blob(blob)

    def readers(
        self, patient: str, category: str, author: str, record_id: str
    ) -> tuple[int, dict[str, bytes]]:
        keys = self.service.readers(patient, record_id, category, author)
        return self.service.epoch(patient), keys

    def read(self, tx: txmod.Transaction) -> ReadResult:
        result = self.service.read(tx.to_bytes())
        self._unsealed.append(tx.tx_id)
        return ReadResult(
            str(result["cid"]),
            bytes(result["commitment"]),
            bytes(result["blob"]),
            bytes(result["wrapped_key"]),
        )

    def position(self, tx_id: bytes) -> tuple[int, int]:
        found = self.service.tx(tx_id)
        if found is None:
            raise StoryError(f"transaction {tx_id.hex()} is not committed")
        return found[1], found[2]


class HttpNode:
    """A node process behind its REST API; ``seal`` calls ``/mine`` and waits for the txs."""

    def __init__(self, url: str, chain_id: str, client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self.chain_id = chain_id
        self.client = client or httpx.Client(base_url=self.url, timeout=30)
        self._unsealed: list[bytes] = []

    def submit(self, txs: Sequence[txmod.Transaction]) -> None:
        body = encoding.encode([t.to_bytes() for t in txs])
        answer = self.client.post(
            "/v1/transactions/batch", content=body, headers={"content-type": "application/cbor"}
        )
        answer.raise_for_status()
        results = answer.json()["results"]
        for t, item in zip(txs, results, strict=True):
            if "tx_id" not in item:
                raise StoryError(f"{t.kind} refused: {item}")
            self._unsealed.append(bytes.fromhex(item["tx_id"]))

    def seal(self) -> None:
        self.client.post("/mine").raise_for_status()
        for tx_id in self._unsealed:
            self.position(tx_id, wait=10)
        self._unsealed.clear()

    def put_blob(self, blob: bytes) -> str:
        answer = self.client.post(
            "/v1/blobs", content=blob, headers={"content-type": "application/octet-stream"}
        )
        answer.raise_for_status()
        return str(answer.json()["cid"])

    def readers(
        self, patient: str, category: str, author: str, record_id: str
    ) -> tuple[int, dict[str, bytes]]:
        answer = self.client.get(
            f"/v1/patients/{patient}/readers",
            params={"category": category, "author": author, "record_id": record_id},
        )
        answer.raise_for_status()
        body = answer.json()
        return int(body["epoch"]), {a: bytes.fromhex(k) for a, k in body["readers"].items()}

    def read(self, tx: txmod.Transaction) -> ReadResult:
        answer = self.client.post(
            "/v1/records/read", content=tx.to_bytes(), headers={"content-type": "application/cbor"}
        )
        answer.raise_for_status()
        body = answer.json()
        self._unsealed.append(tx.tx_id)
        return ReadResult(
            str(body["cid"]),
            bytes.fromhex(body["commitment"]),
            b64url_decode(body["blob"]),
            b64url_decode(body["wrapped_key"]),
        )

    def position(self, tx_id: bytes, wait: float = 0) -> tuple[int, int]:
        answer = self.client.get(f"/v1/txs/{tx_id.hex()}", params={"wait": wait})
        if answer.status_code == 404:
            raise StoryError(f"transaction {tx_id.hex()} is not committed")
        answer.raise_for_status()
        body = answer.json()
        return int(body["height"]), int(body["index"])


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- the story -----------------------------------------------------------------


@dataclass
class Actor:
    """A person with keys and the next sequence number of their account."""

    identity: Identity
    nonce: int = 0

    @property
    def address(self) -> Address:
        return Address(self.identity.address)

    def account_payload(self) -> dict[str, Any]:
        return {
            "address": self.identity.address,
            "signing_key": self.identity.signing.public_key,
            "encryption_key": self.identity.encryption.public_key,
        }


@dataclass(frozen=True, slots=True)
class WrittenRecord:
    """A record version the story wrote, with the plaintext that only readers may see."""

    label: str
    record_id: str
    version: int
    patient: str
    author: str
    category: str
    plaintext: bytes
    sealed: SealedVersion

    @property
    def cid(self) -> str:
        return self.sealed.cid

    @property
    def is_fhir(self) -> bool:
        return self.sealed.kind == "fhir"


@dataclass
class Story:
    """The consortium on one node: people, the records they wrote, and labelled transactions."""

    node: Node
    admin: Actor
    validator: Actor
    hospital_admin: Actor
    patients: tuple[Actor, Actor]
    providers: tuple[Actor, Actor]
    records: list[WrittenRecord] = field(default_factory=list)
    txs: dict[str, txmod.Transaction] = field(default_factory=dict)
    reads: dict[str, bytes] = field(default_factory=dict)
    """Plaintexts obtained by the story's reads, by read label."""

    @property
    def chain_id(self) -> str:
        return self.node.chain_id

    def sign(self, actor: Actor, kind: str, payload: dict[str, Any]) -> txmod.Transaction:
        """Sign with the actor's next sequence number and move it on."""
        signed = txmod.build(
            kind, self.chain_id, actor.address, actor.nonce, payload, actor.identity.signing
        )
        actor.nonce += 1
        return signed

    def send(self, label: str, actor: Actor, kind: str, payload: dict[str, Any]) -> None:
        signed = self.sign(actor, kind, payload)
        self.node.submit([signed])
        self.txs[label] = signed

    def write(
        self,
        label: str,
        author: Actor,
        patient: Actor,
        content: bytes,
        category: str,
        *,
        fhir_version: str = "",
        resource_type: str = "",
        media_type: str = FHIR_MEDIA_TYPE,
    ) -> WrittenRecord:
        """Encrypt ``content`` for exactly the readers the node names and create the record."""
        record_id = record_id_for(self.chain_id, author.address, author.nonce)
        epoch, readers = self.node.readers(patient.address, category, author.address, record_id)
        sealed = seal_version(
            chain_id=self.chain_id,
            record_id=record_id,
            version=1,
            content=content,
            kind="fhir" if fhir_version else "document",
            media_type=media_type,
            fhir_version=fhir_version,
            resource_type=resource_type,
            category=category,
            readers=readers,
        )
        if self.node.put_blob(sealed.blob) != sealed.cid:
            raise StoryError("the node named the blob by another CID")
        on_behalf = None if author is patient else patient.address
        self.send(label, author, "record.create", sealed.payload(epoch, on_behalf))
        written = WrittenRecord(
            label, record_id, 1, patient.address, author.address, category, content, sealed
        )
        self.records.append(written)
        return written

    def write_fhir(self, label: str, author: Actor, patient: Actor, json_bytes: bytes) -> None:
        content, info = prepare_fhir(json_bytes, "R4B")
        self.write(
            label,
            author,
            patient,
            content,
            info.category,
            fhir_version=info.fhir_version,
            resource_type=info.resource_type,
        )

    def grant_all(self, label: str, patient: Actor, grantee: Actor) -> None:
        """The patient grants everything, re-wrapping each of their versions for the grantee."""
        rewraps = [
            [
                r.record_id,
                r.version,
                rewrap(
                    chain_id=self.chain_id,
                    record_id=r.record_id,
                    version=r.version,
                    wrapped_key=r.sealed.wrapped[patient.address],
                    holder_address=patient.address,
                    holder_keys=patient.identity.all_encryption_keys(),
                    grantee_address=grantee.address,
                    grantee_public_key=grantee.identity.encryption.public_key,
                ),
            ]
            for r in self.records
            if r.patient == patient.address
        ]
        payload = {
            "grantee": grantee.address,
            "scope": {"all": True},
            "expires_ms": 0,
            "rewraps": rewraps,
        }
        self.send(label, patient, "access.grant", payload)

    def read(self, label: str, reader: Actor, record: WrittenRecord) -> bytes:
        """A signed read (the audit event); returns the plaintext the reader decrypts."""
        signed = self.sign(
            reader, "record.read", {"record_id": record.record_id, "version": record.version}
        )
        result = self.node.read(signed)
        self.txs[label] = signed
        plaintext = open_version(
            chain_id=self.chain_id,
            record_id=record.record_id,
            version=record.version,
            blob=result.blob,
            cid=result.cid,
            commitment=result.commitment,
            wrapped_key=result.wrapped_key,
            reader_address=reader.address,
            keys=reader.identity.all_encryption_keys(),
        )
        self.reads[label] = plaintext
        return plaintext

    def record(self, label: str) -> WrittenRecord:
        return next(r for r in self.records if r.label == label)


def fhir_examples() -> Mapping[str, bytes]:
    """HL7's demo examples by resource type (Observation, Condition, …)."""
    return {name.split("/", 1)[0]: data for name, data in demo_examples()}


def discharge_summary_pdf(lines: Sequence[str]) -> bytes:
    """A one-page PDF 1.4 with the given text lines and a correct cross-reference table."""
    text = "".join(f"({line}) Tj T* " for line in lines)
    stream = f"BT /F1 11 Tf 14 TL 72 760 Td {text}ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def build_story(node: Node, admin: Identity, validator: Identity) -> Story:
    """Write the consortium onto ``node`` (whose genesis names ``admin`` and ``validator``).

    Blocks, in order: the hospital; its patients and providers; verification
    and consent; the records; the grant; the read.
    """
    story = Story(
        node=node,
        admin=Actor(admin),
        validator=Actor(validator),
        hospital_admin=Actor(new_identity("st-marys-admin", "hospital_admin")),
        patients=(Actor(new_identity("ada", "patient")), Actor(new_identity("ben", "patient"))),
        providers=(Actor(new_identity("dr-chen", "provider")), Actor(new_identity("dr-okafor"))),
    )
    ada, ben = story.patients
    chen, okafor = story.providers
    hospital = story.hospital_admin

    story.send(
        "hospital.admit",
        story.admin,
        "hospital.admit",
        {"hospital_id": "st-marys", "name": "St Mary's", "admin": hospital.account_payload()},
    )
    node.seal()

    for label, patient in (("ada", ada), ("ben", ben)):
        story.send(f"register {label}", hospital, "patient.register", patient.account_payload())
    for label, provider, licence in (
        ("chen", chen, "GMC-100001"),
        ("okafor", okafor, "GMC-100002"),
    ):
        payload = {**provider.account_payload(), "licence": licence}
        story.send(f"register {label}", hospital, "provider.register", payload)
    node.seal()

    for label, provider in (("chen", chen), ("okafor", okafor)):
        story.send(
            f"verify {label}", story.validator, "provider.verify", {"provider": provider.address}
        )
    story.send("consent ada->chen", ada, "consent.authorise", {"provider": chen.address})
    story.send("consent ben->chen", ben, "consent.authorise", {"provider": chen.address})
    node.seal()

    examples = fhir_examples()
    story.write_fhir("Observation", chen, ada, examples["Observation"])
    story.write_fhir("Condition", chen, ada, examples["Condition"])
    story.write_fhir("AllergyIntolerance", ada, ada, examples["AllergyIntolerance"])
    story.write_fhir("MedicationRequest", chen, ben, examples["MedicationRequest"])
    summary = discharge_summary_pdf(
        [
            "St Mary's Hospital - discharge summary",
            f"Patient reference {os.urandom(6).hex()}: admitted with community-acquired",
            "pneumonia, treated with amoxicillin 500 mg three times daily for 5 days.",
            "Follow-up chest radiograph in six weeks with the respiratory clinic.",
        ]
    )
    story.write(
        "discharge-summary",
        chen,
        ada,
        prepare_document(summary, "application/pdf"),
        "document",
        media_type="application/pdf",
    )
    node.seal()

    story.grant_all("grant ada->okafor", ada, okafor)
    node.seal()

    story.read("read okafor Observation", okafor, story.record("Observation"))
    story.read("read ada discharge-summary", ada, story.record("discharge-summary"))
    node.seal()
    return story


@dataclass(frozen=True, slots=True)
class StoryDir:
    """A closed data directory holding the story, and where each labelled tx was committed."""

    data_dir: Path
    story: Story
    positions: Mapping[str, tuple[int, int]]
    """Label -> (block height, index in the block)."""


def write_story_data_dir(data_dir: Path, chain_id: str = "ehrchain-story") -> StoryDir:
    """Initialise ``data_dir``, write the story through an in-process service, close it
    and checkpoint the ledger.

    The node key password is kept in the data directory (as the demo does), so
    the directory can be reopened without ``$EHRCHAIN_NODE_PASSWORD``.
    """
    init = init_node(
        data_dir,
        password="story password",
        chain_id=chain_id,
        kdf=KdfParams.FAST_FOR_TESTS,
        write_password_file=True,
    )
    service = open_service(load(data_dir))
    try:
        story = build_story(LocalNode(service), init.admin, init.validator)
        positions = {label: story.node.position(t.tx_id) for label, t in story.txs.items()}
    finally:
        service.ledger.close()
    checkpoint(data_dir / "ledger.sqlite")
    return StoryDir(data_dir, story, positions)


def checkpoint(ledger: Path) -> None:
    """Fold the WAL into the main file, so every committed byte is in ``ledger.sqlite``."""
    conn = sqlite3.connect(ledger)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.close()
    wal = ledger.with_name(ledger.name + "-wal")
    if busy or (wal.exists() and wal.stat().st_size):
        raise StoryError("the ledger's WAL could not be folded into the main file")


def json_needles(plaintext: bytes, minimum: int = 16, per_record: int = 12) -> list[bytes]:
    """Distinctive pieces of a FHIR JSON plaintext to search stored files for.

    Its longest string values (names, codes' display texts, narrative), parts of
    the narrative ``div``, and slices of the exact JSON bytes. ``resourceType``
    (the chain records it as metadata) and terminology URIs, which say nothing
    about a patient, are left out.
    """
    values: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if len(value) >= minimum and not value.startswith(("http:", "https:", "urn:")):
                values.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key != "resourceType":
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(json.loads(plaintext))
    needles = [v.encode() for v in sorted(set(values), key=len, reverse=True)[:per_record]]
    for value in values:
        if value.startswith("<div"):
            encoded = value.encode()
            needles += [encoded[i : i + 32] for i in range(40, max(41, len(encoded) - 32), 97)][:6]
    step = max(1, len(plaintext) // 4)
    needles += [plaintext[i : i + 32] for i in range(0, len(plaintext) - 32, step)]
    return [n for n in needles if len(n) >= minimum]


def forget_blob(blob_dir: Path, cid: str) -> None:
    """Lose one blob from a stopped node's store (its index row, as a damaged or
    hand-edited index would): the bytes stay in the pack, unreachable by CID."""
    with sqlite3.connect(blob_dir / "index.sqlite") as db:
        assert db.execute("DELETE FROM blobs WHERE cid = ?", (cid,)).rowcount == 1
    db.close()
