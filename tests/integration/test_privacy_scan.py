"""No plaintext health data reaches a node's disk or logs, even in rejected requests.

A real node process runs the story over HTTP (FHIR records and a PDF, all
encrypted client-side), then receives requests that carry health data in the
clear and must be refused: a signed record transaction with a plaintext note,
a forged signature over one, a batch holding it, a body that is not JSON, and
a made-up patient name in URL queries and paths. After the node stops, every
file of its data directory (ledger and its WAL, blobs, keys, node.log) and its
process log are searched for distinctive pieces of each plaintext, raw and
hex-encoded. The data really went through: authorised readers decrypt the
served blobs, and the blob files on disk, back to the exact plaintexts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from ehrchain.core import encoding
from ehrchain.core import tx as txmod
from ehrchain.core.types import Address, ChainId
from ehrchain.ehr.records import open_version
from ehrchain.storage.blobs import BlobStore
from story import HttpNode, Story, WrittenRecord, build_story, fhir_examples, json_needles

if TYPE_CHECKING:
    from conftest import RunningNode

pytestmark = pytest.mark.integration

MADE_UP_NAME = "Quentin Zarathustra-Pemberton"
CBOR = {"content-type": "application/cbor"}


def _document_needles(data: bytes) -> list[bytes]:
    return [data[i : i + 32] for i in range(0, len(data) - 32, 40)] + [data]


def _needles(story: Story, unstored: bytes) -> dict[str, list[bytes]]:
    """What must never be found, by where it came from."""
    found: dict[str, list[bytes]] = {}
    for record in story.records:
        if record.is_fhir:
            found[record.label] = json_needles(record.plaintext)
        else:
            found[record.label] = _document_needles(record.plaintext)
    found["rejected FHIR"] = json_needles(unstored)
    found["made-up name"] = [MADE_UP_NAME.encode(), MADE_UP_NAME.replace(" ", "+").encode()]
    return found


def _send_rejected_health_data(node: RunningNode, story: Story, unstored: bytes) -> None:
    """Requests that carry plaintext health data; every one must be refused."""
    chen = story.providers[0]
    ada = story.patients[0]
    observation = story.record("Observation").plaintext
    leaky = {
        "record_id": "r" + "0" * 32,
        "category": "general",
        "note": observation.decode() + unstored.decode(),
        "patient": ada.address,
    }
    malformed = txmod.build(
        "record.create", story.chain_id, chen.address, chen.nonce, leaky, chen.identity.signing
    )
    forged = txmod.Transaction(
        "record.create",
        ChainId(story.chain_id),
        Address(chen.address),
        chen.nonce,
        {**leaky, "note": unstored.decode()},
        chen.identity.signing.public_key,
        bytes(64),
    )
    with httpx.Client(base_url=node.url, timeout=30) as client:
        answers = [
            client.post("/v1/records", content=malformed.to_bytes(), headers=CBOR),
            client.post("/new_transaction", content=forged.to_bytes(), headers=CBOR),
            client.post(
                "/v1/records",
                content=json.dumps({"tx": unstored.decode()}),
                headers={"content-type": "application/json"},
            ),
            client.post(
                "/v1/records",
                content=b"{not json " + unstored,
                headers={"content-type": "application/json"},
            ),
            client.get(
                f"/v1/patients/{ada.address}/readers",
                params={"category": MADE_UP_NAME, "author": MADE_UP_NAME},
            ),
            client.get(f"/v1/accounts/{MADE_UP_NAME}"),
            client.get("/v1/search", params={"name": MADE_UP_NAME}),
        ]
        batch = client.post(
            "/v1/transactions/batch",
            content=encoding.encode([malformed.to_bytes(), forged.to_bytes()]),
            headers=CBOR,
        )
    for answer in answers:
        assert 400 <= answer.status_code < 500, (answer.request.url.path, answer.status_code)
        assert unstored not in answer.content
    assert batch.json()["accepted"] == 0


def _files(node: RunningNode) -> Iterator[Path]:
    yield node.process.log_path
    yield from (p for p in sorted(node.data_dir.rglob("*")) if p.is_file())


def _open_blob_file(node: RunningNode, story: Story, record: WrittenRecord) -> bytes:
    """Decrypt the blob file on disk as the patient, with the key wrapped at write time."""
    patient = next(p for p in story.patients if p.address == record.patient)
    return open_version(
        chain_id=story.chain_id,
        record_id=record.record_id,
        version=record.version,
        blob=BlobStore(node.data_dir / "blobs").get(record.cid),
        cid=record.cid,
        commitment=record.sealed.commitment,
        wrapped_key=record.sealed.wrapped[patient.address],
        reader_address=patient.address,
        keys=patient.identity.all_encryption_keys(),
    )


@pytest.mark.slow
def test_no_plaintext_reaches_the_nodes_files_or_logs(node_server: RunningNode) -> None:
    http = HttpNode(node_server.url, node_server.chain_id)
    with http.client:
        story = build_story(http, node_server.admin, node_server.validator)
    unstored = fhir_examples()["Immunization"]
    _send_rejected_health_data(node_server, story, unstored)
    node_server.stop()

    # The data went through the node: readers decrypt what it served and stored.
    assert story.reads["read okafor Observation"] == story.record("Observation").plaintext
    summary = story.record("discharge-summary").plaintext
    assert story.reads["read ada discharge-summary"] == summary
    for record in story.records:
        assert _open_blob_file(node_server, story, record) == record.plaintext
    files = list(_files(node_server))
    names = {p.name for p in files}
    assert {"ledger.sqlite", "node.log", node_server.process.log_path.name} <= names
    assert {"000001.pack", "index.sqlite"} <= names  # the blobs are among the scanned files
    log_lines = (node_server.data_dir / "node.log").read_text().splitlines()
    assert any(json.loads(line).get("status") == 400 for line in log_lines)

    needles = _needles(story, unstored)
    assert all(needles.values())
    for path in files:
        content = path.read_bytes()
        lowered = content.lower()
        for source, pieces in needles.items():
            for piece in pieces:
                assert piece not in content, f"{source}: {piece[:40]!r} found in {path.name}"
                assert piece.hex().encode() not in lowered, f"{source} (hex) found in {path.name}"
