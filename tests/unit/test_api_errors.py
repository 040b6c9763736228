"""The API's one error mapping: every error class to its status, code and a safe message."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI, Query, Request
from fastapi.testclient import TestClient

import ehrchain.api as api
from ehrchain.api import errors as api_errors
from ehrchain.api.bodies import tx_bytes
from ehrchain.api.errors import CODE_STATUS, install_error_handlers, problem_for
from ehrchain.api.middleware import BodyLimitMiddleware, CatchAllMiddleware
from ehrchain.consensus import errors as consensus_errors
from ehrchain.core import cid as cidmod
from ehrchain.core import errors as core_errors
from ehrchain.crypto import errors as crypto_errors
from ehrchain.ehr import errors as ehr_errors
from ehrchain.ehr import fhir, records
from ehrchain.node import errors as node_errors
from ehrchain.storage import errors as storage_errors

SECRET = "Patient Jane Doe has HIV"

CASES: list[tuple[BaseException, int, str]] = [
    # the API's own errors
    (api_errors.MalformedRequest("body is not valid JSON"), 400, "malformed_request"),
    (api_errors.InvalidRequest("body must be a JSON object"), 422, "invalid_request"),
    (api_errors.WrongKind("wrong route"), 400, "wrong_kind"),
    (api_errors.NotFound("no block"), 404, "not_found"),
    (api_errors.BodyTooLarge("too big"), 413, "payload_too_large"),
    (api_errors.UnsupportedMediaType("send json"), 415, "unsupported_media_type"),
    # core
    (core_errors.EncodingError("not canonical"), 400, "malformed_request"),
    (core_errors.InvalidAddress("bad checksum"), 400, "invalid_address"),
    (core_errors.InvalidTransaction("wrong chain"), 400, "invalid_transaction"),
    (core_errors.InvalidBlock("bad root"), 400, "invalid_block"),
    (core_errors.InvalidProof("short"), 400, "invalid_proof"),
    (cidmod.InvalidCid("bad cid"), 400, "invalid_cid"),
    (cidmod.BlobCorrupt("blob differs"), 500, "blob_corrupt"),
    # crypto
    (crypto_errors.InvalidSignature("does not verify"), 401, "bad_signature"),
    (crypto_errors.InvalidKey("small order"), 400, "invalid_key"),
    (crypto_errors.DecryptionError("tag"), 400, "decryption_failed"),
    (crypto_errors.KeystoreError("wrong password"), 400, "keystore"),
    # storage
    (storage_errors.BlobNotFound("no blob"), 404, "blob_not_found"),
    (storage_errors.BlobTooLarge("too big"), 413, "payload_too_large"),
    (storage_errors.BlobCorrupt("differs"), 500, "blob_corrupt"),
    (storage_errors.LedgerCorrupt("damaged"), 500, "ledger_corrupt"),
    (storage_errors.LedgerError("not the head"), 409, "ledger_conflict"),
    # consensus
    (consensus_errors.InvalidCertificate("no quorum"), 400, "invalid_certificate"),
    (consensus_errors.NotAValidator("outsider"), 403, "not_a_validator"),
    # ehr rules
    (ehr_errors.WrongChain("other chain"), 400, "wrong_chain"),
    (ehr_errors.UnknownAccount("unknown sender"), 404, "unknown_account"),
    (ehr_errors.InactiveAccount("inactive"), 403, "inactive_account"),
    (ehr_errors.WrongKey("not the current key"), 401, "wrong_key"),
    (ehr_errors.BadNonce(5, 4), 409, "bad_nonce"),
    (ehr_errors.UnknownKind("no such kind"), 400, "unknown_kind"),
    (ehr_errors.MalformedPayload("scope", "must be a map"), 400, "malformed_payload"),
    (ehr_errors.NotAuthorised("patient-only"), 403, "not_authorised"),
    (ehr_errors.NotVerified("unverified"), 403, "not_verified"),
    (ehr_errors.AlreadyExists("exists"), 409, "already_exists"),
    (ehr_errors.NotFound("no record"), 404, "not_found"),
    (ehr_errors.StaleEpoch(2, 1), 409, "stale_epoch"),
    (ehr_errors.WrongReaders(["ehr1a"], []), 409, "wrong_readers"),
    (ehr_errors.BadVersion(3, 5), 409, "bad_version"),
    (ehr_errors.Immutable("category"), 400, "immutable"),
    (ehr_errors.Expired("past"), 400, "expired"),
    (ehr_errors.BadSignature("bad"), 401, "bad_signature"),
    (ehr_errors.InvalidGenesis("broken"), 500, "invalid_genesis"),
    (ehr_errors.InvalidBlockTx(0, ehr_errors.Expired("past")), 400, "invalid_block_tx"),
    (fhir.InvalidFhir("Patient.birthDate (date_from_datetime_parsing)"), 400, "invalid_fhir"),
    (records.RecordIntegrityError("fails its CID"), 400, "record_integrity"),
    (records.NotAReader("no key"), 403, "not_a_reader"),
    (records.InvalidDocument("not a PDF"), 400, "invalid_document"),
    # node
    (node_errors.Rejected("duplicate", "already pending"), 409, "duplicate"),
    (node_errors.Rejected("pool_full", "retry later"), 503, "pool_full"),
    (node_errors.Rejected("not_next", "does not extend"), 409, "not_next"),
    (node_errors.Rejected("wrong_kind", "not a read"), 400, "wrong_kind"),
    (node_errors.Rejected("wrong_chain", "other chain"), 400, "wrong_chain"),
    (node_errors.Rejected("invalid_block", "bad root"), 400, "invalid_block"),
    (node_errors.NotFoundError("nothing"), 404, "not_found"),
    (node_errors.PayloadTooLarge("blob too big"), 413, "too_large"),
    (node_errors.Unavailable("shutting down"), 503, "unavailable"),
]


@pytest.mark.parametrize(("exc", "status", "code"), CASES, ids=lambda v: type(v).__name__)
def test_error_class_maps_to_status_and_code(exc: BaseException, status: int, code: str) -> None:
    problem = problem_for(exc)
    assert (problem.status, problem.code) == (status, code)
    if status >= 500 and status != 503:
        assert problem.message == api_errors.GENERIC_MESSAGE
    else:
        assert problem.message == " ".join(str(exc).split())


def test_every_ehr_error_code_has_an_explicit_status() -> None:
    pending = [ehr_errors.EhrError]
    seen: set[str] = set()
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is not ehr_errors.EhrError and not cls.__name__.startswith("Ehr"):
            seen.add(cls.code)
    missing = sorted(c for c in seen if c not in CODE_STATUS)
    assert missing == []


def test_unknown_exception_is_500_without_its_message() -> None:
    problem = problem_for(ValueError(SECRET))
    assert (problem.status, problem.code, problem.message) == (500, "internal", "internal error")


def test_message_is_one_bounded_line() -> None:
    problem = problem_for(ehr_errors.NotAuthorised("rule", "x\n" * 500))
    assert "\n" not in problem.message
    assert len(problem.message) <= api_errors.MAX_MESSAGE_LENGTH


def test_foreign_exception_with_a_code_attribute_is_not_trusted() -> None:
    class ForeignError(Exception):
        code = "not_found"

    assert problem_for(ForeignError(SECRET)).status == 500


def _probe_app(max_bytes: int = 1024) -> FastAPI:
    """A minimal app wired with the real error handlers and middleware."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/tx")
    async def post_tx(request: Request) -> dict[str, int]:
        return {"size": len(await tx_bytes(request))}

    @app.get("/page")
    def page(limit: int = Query(10, le=500)) -> dict[str, int]:
        return {"limit": limit}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(SECRET)

    app.add_middleware(BodyLimitMiddleware, max_bytes=max_bytes)
    app.add_middleware(CatchAllMiddleware)
    return app


def _error(response: httpx.Response) -> dict[str, str]:
    body = json.loads(response.content)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert SECRET not in response.text
    error: dict[str, str] = body["error"]
    return error


@pytest.fixture
def probe() -> TestClient:
    return TestClient(_probe_app(), raise_server_exceptions=False)


def test_malformed_json_is_400(probe: TestClient) -> None:
    r = probe.post("/tx", content=b'{"tx": ' + SECRET.encode(), headers=_json())
    assert r.status_code == 400
    assert _error(r)["code"] == "malformed_request"


def test_wrong_json_shape_is_422(probe: TestClient) -> None:
    r = probe.post("/tx", json={"tx": "AA", "note": SECRET})
    assert r.status_code == 422
    assert _error(r)["code"] == "invalid_request"


def test_invalid_base64_is_400(probe: TestClient) -> None:
    r = probe.post("/tx", json={"tx": "not base64!" + SECRET})
    assert r.status_code == 400
    assert _error(r)["code"] == "malformed_request"


def test_unsupported_media_type_is_415(probe: TestClient) -> None:
    r = probe.post("/tx", content=SECRET.encode(), headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert _error(r)["code"] == "unsupported_media_type"


def test_declared_oversized_body_is_413(probe: TestClient) -> None:
    r = probe.post("/tx", content=b"x" * 2048, headers={"content-type": "application/cbor"})
    assert r.status_code == 413
    assert _error(r)["code"] == "payload_too_large"


def test_streamed_oversized_body_is_413(probe: TestClient) -> None:
    chunks = (b"x" * 700 for _ in range(3))
    r = probe.post("/tx", content=chunks, headers={"content-type": "application/cbor"})
    assert r.status_code == 413


def test_body_within_limit_passes(probe: TestClient) -> None:
    r = probe.post("/tx", content=b"x" * 1000, headers={"content-type": "application/cbor"})
    assert r.status_code == 200
    assert r.json() == {"size": 1000}


def test_query_validation_is_422_and_names_only_the_place(probe: TestClient) -> None:
    r = probe.get("/page", params={"limit": "9999"})
    assert r.status_code == 422
    error = _error(r)
    assert error["message"] == "invalid query.limit"
    assert "9999" not in r.text


def test_unhandled_exception_is_generic_500(probe: TestClient) -> None:
    r = probe.get("/boom")
    assert r.status_code == 500
    assert _error(r) == {"code": "internal", "message": "internal error"}


def test_unknown_route_and_method_use_the_error_body(probe: TestClient) -> None:
    assert _error(probe.get("/nope"))["code"] == "not_found"
    r = probe.get("/tx")
    assert r.status_code == 405
    assert _error(r)["code"] == "method_not_allowed"


def _json() -> dict[str, str]:
    return {"content-type": "application/json"}


def test_public_surface() -> None:
    assert sorted(api.__all__) == [
        "CODE_STATUS",
        "DEFAULT_MAX_BODY_BYTES",
        "Problem",
        "create_app",
        "problem_for",
    ]
    assert all(hasattr(api, name) for name in api.__all__)
