"""`ehrchain demo`: four BFT validator processes, one per hospital, with the sample data.

``prepare`` is what ``make demo`` runs before it prints the logins. The test
checks what the printout promises: four nodes of one BFT chain at one head,
the four hospitals on chain, every demo login present on every node, a sample
record readable through a node that did not take the writes, and a second
start reusing the same consortium.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ehrchain.client.actor import Actor
from ehrchain.client.http import EhrClient
from ehrchain.crypto.keystore import KdfParams, load_identity
from ehrchain.node.demo import DEMO_PASSWORD, HOSPITALS, describe, prepare
from ehrchain.web.accounts import AccountStore
from ehrchain.web.settings import WebSettings
from network_nodes import free_ports, wait_same_head

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_demo_is_a_four_hospital_bft_consortium_with_sample_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    said: list[str] = []
    network, users = prepare(data_dir, free_ports(4), said.append, kdf=KdfParams.FAST_FOR_TESTS)
    try:
        urls = network.urls
        assert len(urls) == 4
        height, _ = wait_same_head(urls)
        assert height > 10
        statuses = [httpx.get(f"{u}/v1/status", timeout=10).json() for u in urls]
        assert {s["consensus"] for s in statuses} == {"bft"}
        assert all(len(s["validators"]) == 4 for s in statuses)

        labels = {u.label for u in users}
        assert {f"{h}-admin" for h, _ in HOSPITALS} <= labels
        for process in network.processes:
            settings = WebSettings(data_dir=process.data_dir)
            store = AccountStore(
                settings.accounts_path, settings.password_cost, settings.keystore_kdf
            )
            try:
                assert all(store.get(label) is not None for label in labels)
            finally:
                store.close()

        # patient-1 reads her own first record through the last hospital's node.
        patient = next(u for u in users if u.label == "patient-1")
        identity = load_identity(Path(patient.key_file), DEMO_PASSWORD)
        with EhrClient(urls[-1]) as client:
            records = client.patient_records(patient.address)
            assert records, "the demo wrote no record for patient-1"
            plaintext = Actor(identity, client, wait_s=60).get(records[0]["record_id"])
        assert plaintext

        text = describe(network, users, data_dir)
        for (_, name), url in zip(HOSPITALS, urls, strict=True):
            assert name in text
            assert url in text
        assert DEMO_PASSWORD in text
        head_before = wait_same_head(urls)
    finally:
        network.stop()

    again, same_users = prepare(data_dir, network.processes[0].port, said.append)
    try:
        assert same_users == users
        assert wait_same_head(again.urls)[0] >= head_before[0]
    finally:
        again.stop()
