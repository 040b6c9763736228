"""Long-polls for a commit (``wait_for_tx``, ``wait_for_height``): woken by commits,
never by admissions, and never waiting for the service lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ehrchain.core import tx as txmod
from ehrchain.core.identity import new_identity
from ehrchain.crypto.keystore import Identity, KdfParams
from ehrchain.node import settings as settings_mod
from ehrchain.node.service import NodeService
from ehrchain.node.setup import init_node
from ehrchain.node.wiring import open_service
from story import Actor


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[NodeService, Identity]]:
    monkeypatch.setenv(settings_mod.PASSWORD_ENV, "pw")
    setup = init_node(tmp_path, password="pw", kdf=KdfParams.FAST_FOR_TESTS)
    service = open_service(settings_mod.load(tmp_path))
    try:
        yield service, setup.admin
    finally:
        service.close()
        service.ledger.close()


def _admit_hospital(service: NodeService, admin: Identity, n: int) -> bytes:
    hospital = Actor(new_identity(f"hospital-{n}", "hospital_admin"))
    payload = {"hospital_id": f"h{n}", "name": f"Hospital {n}", "admin": hospital.account_payload()}
    nonce = service.next_nonce(admin.address)
    tx = txmod.build(
        "hospital.admit", service.chain_id, admin.address, nonce, payload, admin.signing
    )
    return service.submit(tx.to_bytes())


def _in_thread(work: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(work()), daemon=True)
    thread.start()
    return thread, out


def test_a_waiter_returns_when_its_transaction_commits(node: tuple[NodeService, Identity]) -> None:
    service, admin = node
    tx_id = _admit_hospital(service, admin, 1)
    thread, out = _in_thread(lambda: service.wait_for_tx(tx_id, 20.0))
    thread.join(0.3)
    assert thread.is_alive()  # pending, not committed: still waiting
    assert service.mine() is not None
    thread.join(10.0)
    assert not thread.is_alive()
    assert out[0] is not None
    assert out[0][0].tx_id == tx_id


def test_waiters_never_need_the_service_lock(node: tuple[NodeService, Identity]) -> None:
    service, admin = node
    tx_id = _admit_hospital(service, admin, 1)
    service.mine()
    height = service.head().height
    with service._lock:  # admission or sealing in progress
        found, _ = _in_thread(lambda: service.wait_for_tx(tx_id, 20.0))
        reached, _ = _in_thread(lambda: service.wait_for_height(height, 20.0))
        missing, answer = _in_thread(lambda: service.wait_for_tx(bytes(32), 0.2))
        for thread in (found, reached, missing):
            thread.join(5.0)
            assert not thread.is_alive()
    assert answer == [None]


def test_an_admission_does_not_wake_a_waiter(
    node: tuple[NodeService, Identity], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, admin = node
    lookups: list[bytes] = []
    first = _admit_hospital(service, admin, 1)
    real_reader = service.ledger.reader

    def counting_reader() -> Any:
        lookups.append(first)
        return real_reader()

    real_tx = service.ledger.tx

    def counting_tx(tx_id: bytes) -> Any:
        lookups.append(tx_id)
        return real_tx(tx_id)

    monkeypatch.setattr(service.ledger, "reader", counting_reader)
    monkeypatch.setattr(service.ledger, "tx", counting_tx)
    thread, out = _in_thread(lambda: service.wait_for_tx(first, 20.0))
    thread.join(0.1)
    before = len(lookups)
    for n in range(2, 12):
        _admit_hospital(service, admin, n)
    thread.join(0.1)
    assert len(lookups) == before  # ten admissions, no lookup
    service.mine()
    thread.join(10.0)
    assert out
    assert out[0] is not None
