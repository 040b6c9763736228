"""Bad input at the HTTP level, against a real node process.

Every case checks the status code and error code, that the answer does not
echo what was sent, and that nothing was committed: after ``/mine`` the height
and the sender's next nonce are what they were before.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from ehrchain.client import KIND_ROUTES, Actor, ApiError, EhrClient, new_identity
from ehrchain.core import encoding
from ehrchain.core import tx as txmod
from ehrchain.core.types import Address
from ehrchain.crypto.keystore import Identity
from ehrchain.ehr.fhir import InvalidFhir
from ehrchain.node import settings as settings_mod

pytestmark = pytest.mark.integration

MARKER = "Zq7-MARKER-diagnosis-HIV-positive"
CBOR = {"content-type": "application/cbor"}
OBSERVATION = json.dumps(
    {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "glucose"},
        "valueQuantity": {"value": 5.4, "unit": "mmol/L"},
    }
).encode()


class _Process(Protocol):
    log_path: Path


class RunningNode(Protocol):
    """The shape of the ``node_server`` fixture (tests/conftest.py)."""

    url: str
    chain_id: str
    admin: Identity
    validator: Identity
    data_dir: Path
    process: _Process

    def stop(self) -> None: ...

    def start(self) -> None: ...


@dataclasses.dataclass
class World:
    node: RunningNode
    http: httpx.Client
    client: EhrClient
    admin: Actor
    hospital: Actor
    patient: Actor
    provider: Actor

    def state(self, actor: Actor) -> tuple[int, int]:
        """(height, next nonce of ``actor``) once everything pending is sealed."""
        assert self.http.post("/mine").status_code == 200
        height = self.http.get("/v1/status").json()["height"]
        nonce = self.http.get(f"/v1/accounts/{actor.address}/nonce").json()["next_nonce"]
        return int(height), int(nonce)


@pytest.fixture
def world(node_server: RunningNode) -> Iterator[World]:
    with (
        httpx.Client(base_url=node_server.url, timeout=30) as http,
        EhrClient(node_server.url) as client,
    ):
        admin = Actor(node_server.admin, client)
        hospital = Actor(new_identity("admin of st-mary", "hospital_admin"), client)
        admin.admit_hospital("st-mary", "St Mary", hospital.identity)
        patient = Actor(new_identity("patient"), client)
        provider = Actor(new_identity("provider"), client)
        hospital.register_patient(patient.identity)
        hospital.register_provider(provider.identity, "NPI-1234567")
        Actor(node_server.validator, client).verify_provider(provider.address)
        yield World(node_server, http, client, admin, hospital, patient, provider)


def _error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    if code is not None:
        assert body["error"]["code"] == code
    assert MARKER not in response.text
    error: dict[str, str] = body["error"]
    return error


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _consent(
    world: World, actor: Actor | None = None, nonce: int | None = None
) -> txmod.Transaction:
    """A valid transaction (by the patient, unless ``actor``): create consent for the provider."""
    sender = actor or world.patient
    return sender.build("consent.authorise", {"provider": world.provider.address}, nonce)


def test_malformed_json_is_400(world: World) -> None:
    before = world.state(world.patient)
    for path in ("/new_transaction", "/v1/consents", "/v1/transactions/batch"):
        r = world.http.post(
            path,
            content=b'{"tx": "' + MARKER.encode(),
            headers={"content-type": "application/json"},
        )
        _error(r, 400, "malformed_request")
    assert world.state(world.patient) == before


def test_wrong_types_are_422(world: World) -> None:
    before = world.state(world.patient)
    _error(world.http.post("/new_transaction", json={"tx": 12345}), 400, "malformed_request")
    _error(world.http.post("/v1/consents", json=[MARKER]), 422, "invalid_request")
    _error(world.http.post("/v1/consents", json={"tx": "AA", "x": MARKER}), 422, "invalid_request")
    _error(world.http.post("/v1/transactions/batch", json={"txs": MARKER}), 422, "invalid_request")
    _error(world.http.get("/chain", params={"limit": 501}), 422, "invalid_request")
    _error(world.http.get("/v1/blocks/-1"), 422, "invalid_request")
    _error(world.http.get(f"/v1/txs/{MARKER}"), 422, "invalid_request")
    _error(world.http.get(f"/v1/records/{MARKER}"), 422, "invalid_request")
    r = world.http.get(f"/v1/accounts/ehr1{MARKER.lower()}")
    _error(r, 400, "malformed_request")
    assert MARKER.lower() not in r.text
    assert world.state(world.patient) == before


def test_invalid_base64_and_cbor_are_400(world: World) -> None:
    before = world.state(world.patient)
    _error(world.http.post("/v1/consents", json={"tx": "@@not-base64@@"}), 400, "malformed_request")
    _error(world.http.post("/v1/consents", json={"tx": "A"}), 400, "malformed_request")
    garbage = b"\x01\xff\xfe" + MARKER.encode()
    _error(world.http.post("/v1/consents", content=garbage, headers=CBOR), 400)
    noncanonical = b"\x01\x9f\x01\xff"  # indefinite-length array
    _error(world.http.post("/new_transaction", content=noncanonical, headers=CBOR), 400)
    _error(world.http.post("/v1/transactions/batch", content=garbage, headers=CBOR), 400)
    not_bytes = encoding.encode([1, 2, 3])
    _error(world.http.post("/v1/transactions/batch", content=not_bytes, headers=CBOR), 422)
    assert world.state(world.patient) == before


def test_node_to_node_routes_need_a_node_signature(world: World) -> None:
    before = world.state(world.patient)
    garbage = b"\x01\xff\xfe" + MARKER.encode()
    _error(world.http.post("/add_block", content=garbage, headers=CBOR), 403)
    _error(world.http.post("/register_node", json={"url": "http://127.0.0.1:9"}), 403)
    assert world.http.get("/v1/status").json()["peers"] == []
    assert world.state(world.patient) == before


def test_unsupported_media_type_is_415(world: World) -> None:
    before = world.state(world.patient)
    tx = _consent(world)
    r = world.http.post(
        "/v1/consents", content=tx.to_bytes(), headers={"content-type": "text/plain"}
    )
    _error(r, 415, "unsupported_media_type")
    r = world.http.post("/v1/blobs", content=b"x", headers={"content-type": "application/json"})
    _error(r, 415, "unsupported_media_type")
    world.patient.forget_nonce()
    assert world.state(world.patient) == before


def test_oversized_body_is_413(world: World) -> None:
    node = world.node
    node.stop()
    settings = settings_mod.load(node.data_dir)
    settings_mod.write(dataclasses.replace(settings, max_body_bytes=64 * 1024))
    node.start()
    before = world.state(world.patient)
    big = b"\x01" + MARKER.encode() * (70 * 1024 // len(MARKER))
    r = world.http.post("/new_transaction", content=big, headers=CBOR)
    _error(r, 413, "payload_too_large")
    chunks = (big[i : i + 8192] for i in range(0, len(big), 8192))
    r = world.http.post("/v1/transactions/batch", content=chunks, headers=CBOR)
    _error(r, 413, "payload_too_large")
    assert world.state(world.patient) == before


def test_invalid_fhir_is_refused_before_anything_is_sent(world: World) -> None:
    world.patient.authorise(world.provider.address)
    before = world.state(world.provider)
    bad = json.dumps({"resourceType": "Observation", "status": MARKER}).encode()
    with pytest.raises(InvalidFhir) as caught:
        world.provider.put_fhir(world.patient.address, bad)
    assert MARKER not in str(caught.value)
    assert world.state(world.provider) == before
    record_id, version = world.provider.put_fhir(world.patient.address, OBSERVATION)
    assert (world.client.record(record_id) or {}).get("latest") == version == 1


def test_invalid_payload_is_400_from_the_node(world: World) -> None:
    before = world.state(world.hospital)
    somebody = new_identity("incomplete")
    payload = {"address": somebody.address, "signing_key": somebody.signing.public_key}
    r = world.http.post(
        "/v1/patients",
        content=world.hospital.build("patient.register", payload).to_bytes(),
        headers=CBOR,
    )
    error = _error(r, 400, "malformed_payload")
    assert "encryption_key" in error["message"]
    world.hospital.forget_nonce()
    assert world.state(world.hospital) == before


def test_bad_signature_is_401(world: World) -> None:
    before = world.state(world.patient)
    tx = _consent(world)
    forged = dataclasses.replace(
        tx, signature=bytes([tx.signature[0] ^ 1]) + tx.signature[1:], _encoded=b""
    )
    r = world.http.post("/v1/consents", content=forged.to_bytes(), headers=CBOR)
    _error(r, 401, "bad_signature")
    other_key = new_identity("thief").signing
    stolen = txmod.build(
        "consent.authorise",
        tx.chain_id,
        Address(world.patient.address),
        tx.nonce,
        dict(tx.payload),
        other_key,
    )
    r = world.http.post("/v1/consents", content=stolen.to_bytes(), headers=CBOR)
    _error(r, 401, "wrong_key")
    world.patient.forget_nonce()
    assert world.state(world.patient) == before


def test_replay_is_409(world: World) -> None:
    tx = _consent(world)
    first = world.http.post("/v1/consents", content=tx.to_bytes(), headers=CBOR)
    assert first.status_code == 202
    _error(world.http.post("/v1/consents", content=tx.to_bytes(), headers=CBOR), 409)
    before = world.state(world.patient)
    assert world.client.tx(tx.tx_id) is not None
    r = world.http.post("/new_transaction", json={"tx": _b64(tx.to_bytes())})
    _error(r, 409, "bad_nonce")
    assert world.state(world.patient) == before


def test_wrong_chain_id_is_400(world: World) -> None:
    before = world.state(world.patient)
    nonce = world.client.next_nonce(world.patient.address)
    tx = txmod.build(
        "consent.authorise",
        "another-chain",
        Address(world.patient.address),
        nonce,
        {"provider": world.provider.address},
        world.patient.identity.signing,
    )
    r = world.http.post("/v1/consents", content=tx.to_bytes(), headers=CBOR)
    _error(r, 400, "invalid_transaction")
    assert world.state(world.patient) == before


def test_unauthorised_caller_is_403(world: World) -> None:
    before = world.state(world.patient)
    card = new_identity("rogue admin")
    payload = {
        "hospital_id": "rogue",
        "name": "Rogue",
        "admin": {
            "address": card.address,
            "signing_key": card.signing.public_key,
            "encryption_key": card.encryption.public_key,
        },
    }
    tx = world.patient.build("hospital.admit", payload)
    _error(world.http.post("/v1/hospitals", content=tx.to_bytes(), headers=CBOR), 403)
    world.patient.forget_nonce()
    assert world.state(world.patient) == before
    stranger = Actor(new_identity("stranger"), world.client)
    r = world.http.post(
        "/v1/consents", content=_consent(world, stranger, 0).to_bytes(), headers=CBOR
    )
    _error(r, 404, "unknown_account")
    assert world.state(world.patient) == before


def test_kind_must_match_the_route(world: World) -> None:
    before = world.state(world.patient)
    tx = _consent(world)
    for path in ("/v1/access/grants", "/v1/records", "/v1/records/read", "/v1/hospitals"):
        _error(world.http.post(path, content=tx.to_bytes(), headers=CBOR), 400, "wrong_kind")
    world.patient.forget_nonce()
    assert world.state(world.patient) == before


def test_batch_judges_each_item_alone(world: World) -> None:
    good = _consent(world)
    replay = good
    forged = dataclasses.replace(good, signature=bytes(64), _encoded=b"")
    items = [good.to_bytes(), replay.to_bytes(), forged.to_bytes(), b"\x01\x00"]
    r = world.http.post("/v1/transactions/batch", content=encoding.encode(items), headers=CBOR)
    assert r.status_code == 200
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (1, 3)
    statuses = [item.get("status") for item in body["results"]]
    assert statuses == [None, 409, 401, 400]
    assert body["results"][0]["tx_id"] == good.tx_id.hex()


def test_blobs_are_never_served_without_a_signed_read(world: World) -> None:
    cid = world.client.put_blob(b"ciphertext " + MARKER.encode())
    r = world.http.get(f"/v1/blobs/{cid}")
    assert r.status_code in (404, 405)
    assert MARKER not in r.text


def test_unreadable_version_is_403_and_nothing_is_committed(world: World) -> None:
    record_id, _ = world.patient.put_fhir(world.patient.address, OBSERVATION)
    before = world.state(world.provider)
    with pytest.raises(ApiError) as caught:
        world.provider.get(record_id)
    assert (caught.value.status, caught.value.code) == (403, "not_authorised")
    assert world.state(world.provider) == before


def test_errors_and_logs_never_hold_request_content(world: World) -> None:
    world.http.post("/v1/consents", json={"tx": MARKER})
    world.http.get("/v1/patients/x/readers", params={"category": MARKER, "author": MARKER})
    world.patient.authorise(world.provider.address)
    world.provider.put_fhir(world.patient.address, OBSERVATION.replace(b"glucose", MARKER.encode()))
    log = world.node.process.log_path.read_text()
    node_log = world.node.data_dir / "node.log"
    assert MARKER not in log
    assert not node_log.exists() or MARKER not in node_log.read_text()
    assert '"path": "/v1/patients/{address}/readers"' in log


def test_metrics_count_accepted_and_rejected(world: World) -> None:
    tx = _consent(world)
    forged = dataclasses.replace(tx, signature=bytes(64), _encoded=b"")
    world.http.post("/v1/consents", content=forged.to_bytes(), headers=CBOR)
    text = world.http.get("/metrics").text
    values = _metrics(text)
    assert values["ehrchain_txs_accepted_total"] >= 4
    assert values["ehrchain_txs_rejected_total"] >= 1
    assert values["ehrchain_chain_height"] >= 1
    assert 'route="/v1/consents",status="401"' in text
    gc_seconds = _labelled(text, "ehrchain_gc_cpu_seconds_total")
    assert sorted(gc_seconds) == ['generation="0"', 'generation="1"', 'generation="2"']
    assert all(v >= 0 for v in gc_seconds.values())
    assert _labelled(text, "ehrchain_gc_collections_total")['generation="0"'] >= 1


def _labelled(text: str, name: str) -> dict[str, float]:
    """The samples of one labelled metric, by their label text."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) + 1 :].split("} ")
            out[labels] = float(value)
    return out


def _metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.split()
            out[name] = float(value)
    return out


EXPECTED_ROUTES: dict[str, set[str]] = {
    "/new_transaction": {"post"},
    "/mine": {"post"},
    "/chain": {"get"},
    "/pending_tx": {"get"},
    "/register_node": {"post"},
    "/register_with": {"post"},
    "/add_block": {"post"},
    "/v1/transactions/batch": {"post"},
    "/v1/hospitals": {"post"},
    "/v1/validators": {"post"},
    "/v1/patients": {"post"},
    "/v1/providers": {"post"},
    "/v1/providers/verify": {"post"},
    "/v1/keys/rotate": {"post"},
    "/v1/consents": {"post"},
    "/v1/access/requests": {"post"},
    "/v1/access/grants": {"post"},
    "/v1/access/revocations": {"post"},
    "/v1/delegations": {"post"},
    "/v1/break-glass": {"post"},
    "/v1/keys/rewrap": {"post"},
    "/v1/records": {"post"},
    "/v1/records/{record_id}/versions": {"post"},
    "/v1/records/read": {"post"},
    "/v1/blobs": {"post"},
    "/v1/blobs/batch": {"post"},
    "/v1/status": {"get"},
    "/v1/evidence": {"get"},
    "/v1/blocks/{height}": {"get"},
    "/v1/blocks/by-hash/{block_hash}": {"get"},
    "/v1/txs/{tx_id}": {"get"},
    "/v1/txs/{tx_id}/proof": {"get"},
    "/v1/accounts/{address}": {"get"},
    "/v1/accounts/{address}/nonce": {"get"},
    "/v1/records/{record_id}": {"get"},
    "/v1/records/{record_id}/versions/{number}": {"get"},
    "/v1/patients/{address}/records": {"get"},
    "/v1/patients/{address}/history": {"get"},
    "/v1/patients/{address}/requests": {"get"},
    "/v1/patients/{address}/grants": {"get"},
    "/v1/patients/{address}/readers": {"get"},
    "/healthz": {"get"},
    "/metrics": {"get"},
}


def test_openapi_lists_every_route_and_documents_payloads(node_server: RunningNode) -> None:
    doc: dict[str, Any] = httpx.get(f"{node_server.url}/openapi.json").json()
    node_to_node = ("/p2p/", "/consensus/")  # mounted beside the API by the node process
    paths = {p: set(ops) for p, ops in doc["paths"].items() if not p.startswith(node_to_node)}
    assert paths == EXPECTED_ROUTES
    schemas = doc["components"]["schemas"]
    for route in set(KIND_ROUTES.values()):
        operation = doc["paths"][route]["post"]
        refs = operation["x-ehrchain-payload"]["oneOf"]
        assert all(ref["$ref"].split("/")[-1] in schemas for ref in refs)
        assert set(operation["requestBody"]["content"]) == {"application/json", "application/cbor"}
        assert {"400", "401", "403", "409", "413"} <= set(operation["responses"])
    kinds = {
        k for p in doc["paths"].values() for k in p.get("post", {}).get("x-ehrchain-kinds", [])
    }
    assert kinds == set(KIND_ROUTES) | {"record.read"}
