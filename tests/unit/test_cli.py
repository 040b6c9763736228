"""The ``ehrchain`` command line: keys, error exits, verify, and a client flow on a real node."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Protocol

import pytest
from typer.testing import CliRunner, Result

from ehrchain.cli.main import app
from ehrchain.client import EhrClient
from ehrchain.crypto.keystore import Identity, KdfParams, save_identity
from ehrchain.node.process import free_port
from ehrchain.node.settings import load
from ehrchain.node.setup import init_node
from ehrchain.storage.blobs import BlobStore

PASSWORD = "cli test password"
ENV = {"EHRCHAIN_PASSWORD": PASSWORD, "COLUMNS": "250"}
MARKER = "Zq7-MARKER-diagnosis"
OBSERVATION = json.dumps(
    {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "cholesterol"},
        "valueQuantity": {"value": 4.2, "unit": "mmol/L"},
    }
).encode()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, list(args), env=ENV)


def new_key(runner: CliRunner, path: Path, label: str) -> dict[str, str]:
    result = run(runner, "keys", "new", "--out", str(path), "--label", label)
    assert result.exit_code == 0, result.output
    shown = run(runner, "keys", "show", str(path), "--json")
    assert shown.exit_code == 0, shown.output
    card: dict[str, str] = json.loads(shown.stdout)
    return card


def test_keys_new_writes_an_owner_only_keystore_and_shows_the_card(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "alice.key"
    card = new_key(runner, path, "alice")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert card["label"] == "alice"
    assert card["address"].startswith("ehr1")
    assert card["address"] in path.read_text()
    table = run(runner, "keys", "show", str(path))
    assert card["address"] in table.stdout
    assert card["encryption_key"] in table.stdout


def test_keys_new_refuses_to_overwrite(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "alice.key"
    new_key(runner, path, "alice")
    before = path.read_bytes()
    result = run(runner, "keys", "new", "--out", str(path), "--label", "again")
    assert result.exit_code == 4
    assert "refusing to overwrite" in result.stderr
    assert path.read_bytes() == before


def test_wrong_password_is_one_red_line_and_exit_4(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "alice.key"
    new_key(runner, path, "alice")
    result = runner.invoke(
        app, ["keys", "show", str(path)], env={"EHRCHAIN_PASSWORD": "not the password"}
    )
    assert result.exit_code == 4
    assert result.stderr.strip() == "error: wrong password or corrupted keystore"
    assert "Traceback" not in result.output


def test_unreachable_node_exits_3(runner: CliRunner) -> None:
    result = run(runner, "status", "--node", f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 3
    assert "cannot reach the node" in result.stderr


def test_grant_needs_exactly_one_scope(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "alice.key"
    new_key(runner, path, "alice")
    grantee = new_key(runner, tmp_path / "bob.key", "bob")["address"]
    base = ["grant", grantee, "--key", str(path), "--node", f"http://127.0.0.1:{free_port()}"]
    assert run(runner, *base).exit_code == 2
    assert run(runner, *base, "--all", "--category", "laboratory").exit_code == 2


def test_invalid_fhir_is_refused_locally_without_echo(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "alice.key"
    new_key(runner, path, "alice")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resourceType": "Observation", "status": MARKER}))
    node = f"http://127.0.0.1:{free_port()}"
    result = run(runner, "record", "put", str(bad), "--key", str(path), "--node", node)
    assert result.exit_code == 4
    assert "Observation" in result.stderr
    assert MARKER not in result.output


def test_verify_passes_a_fresh_node_and_names_a_tampered_blob(
    runner: CliRunner, tmp_path: Path
) -> None:
    data_dir = tmp_path / "node"
    init_node(data_dir, password=PASSWORD, kdf=KdfParams.FAST_FOR_TESTS)
    ok = run(runner, "verify", "--data-dir", str(data_dir))
    assert ok.exit_code == 0, ok.output
    assert "ok" in ok.stdout
    store = BlobStore(load(data_dir).blob_dir)
    cid = store.put(b"sealed bytes")
    where = store.locate(cid)
    with where.pack.open("r+b") as pack:
        pack.seek(where.offset + len(b"sealed byte"))
        pack.write(b"z")
    bad = run(runner, "verify", "--data-dir", str(data_dir))
    assert bad.exit_code == 1
    assert "verification failed" in bad.stderr
    assert cid in bad.stderr


class RunningNode(Protocol):
    """The shape of the ``node_server`` fixture (tests/conftest.py)."""

    url: str
    admin: Identity
    validator: Identity


@pytest.mark.integration
def test_client_flow_on_a_real_node(
    runner: CliRunner, tmp_path: Path, node_server: RunningNode
) -> None:
    keys = {}
    for name, identity in (("admin", node_server.admin), ("validator", node_server.validator)):
        keys[name] = tmp_path / f"{name}.key"
        save_identity(keys[name], identity, PASSWORD, KdfParams.FAST_FOR_TESTS)
    cards = {}
    for name in ("hospital", "patient", "doctor", "specialist"):
        keys[name] = tmp_path / f"{name}.key"
        card = new_key(runner, keys[name], name)
        cards[name] = tmp_path / f"{name}.card.json"
        cards[name].write_text(json.dumps(card))
    addr = {n: json.loads(c.read_text())["address"] for n, c in cards.items()}
    node = ("--node", node_server.url)

    def ok(*args: str) -> Result:
        result = run(runner, *args, *node)
        assert result.exit_code == 0, result.output
        return result

    ok("admit-hospital", "st-mary", "St Mary", str(cards["hospital"]), "--key", str(keys["admin"]))
    ok("register", "patient", str(cards["patient"]), "--key", str(keys["hospital"]))
    for i, who in enumerate(("doctor", "specialist")):
        hospital = ("--key", str(keys["hospital"]))
        ok("register", "provider", str(cards[who]), "--licence", f"NPI-00{i}", *hospital)
        ok("verify-provider", addr[who], "--key", str(keys["validator"]))
    ok("authorise", addr["doctor"], "--key", str(keys["patient"]))
    record = tmp_path / "observation.json"
    record.write_bytes(OBSERVATION)
    put = ok(
        "record", "put", str(record), "--patient", addr["patient"], "--key", str(keys["doctor"])
    )
    record_id = put.stdout.split()[1]
    specialist = ("--key", str(keys["specialist"]))
    denied = run(runner, "record", "get", record_id, *specialist, *node)
    assert denied.exit_code == 1
    assert "not_authorised (403)" in denied.stderr
    ok("grant", addr["specialist"], "--category", "laboratory", "--key", str(keys["patient"]))
    out = tmp_path / "read.json"
    ok("record", "get", record_id, "--out", str(out), *specialist)
    assert out.read_bytes() == OBSERVATION
    stdout = ok("record", "get", record_id, "--key", str(keys["patient"]))
    assert stdout.stdout_bytes == OBSERVATION
    ok("revoke", addr["specialist"], "--key", str(keys["patient"]))
    patient = ("--key", str(keys["patient"]))
    amended = tmp_path / "amended.json"
    amended.write_bytes(OBSERVATION.replace(b"4.2", b"3.9"))
    assert "version 2 committed" in ok("record", "amend", record_id, str(amended), *patient).stdout
    ok("keys", "rotate", str(keys["patient"]))
    assert not (tmp_path / "patient.key.rotating").exists()
    shown = json.loads(run(runner, "keys", "show", str(keys["patient"]), "--json").stdout)
    assert shown["address"] == addr["patient"]
    assert shown["encryption_key"] != json.loads(cards["patient"].read_text())["encryption_key"]
    assert ok("record", "get", record_id, "--version", "1", *patient).stdout_bytes == OBSERVATION
    assert ok("record", "get", record_id, *patient).stdout_bytes == amended.read_bytes()
    with EhrClient(node_server.url) as client:
        client.mine()
    history = ok("history", "--key", str(keys["patient"])).stdout
    for kind in ("read", "access.grant", "access.revoke", "record.create", "key.rotate"):
        assert kind in history
    status = ok("status").stdout
    assert "ehrchain-test" in status
