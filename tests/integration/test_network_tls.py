"""TLS between nodes, from configuration only: both nodes serve HTTPS and verify each other.

A test CA signs one certificate for 127.0.0.1; each node's ``[network]``
section names the certificate, its key and the CA. B joins A over
``https://``, syncs, and a transaction sent to B is forwarded to A and comes
back in A's block — every node-to-node call over verified TLS, the forwarded
transaction and the pushed block on the nodes' streams (``wss://``). Plain HTTP
to a TLS node gets no answer.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ehrchain.client.actor import Actor
from ehrchain.client.http import EhrClient
from ehrchain.core.identity import new_identity
from ehrchain.crypto.keystore import KdfParams
from ehrchain.node.network import init_member
from ehrchain.node.p2p import NetworkSettings, network_toml
from ehrchain.node.process import NodeProcess, free_port
from ehrchain.node.setup import init_node
from network_nodes import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_certificates(out: Path) -> NetworkSettings:
    """A CA and a server certificate for 127.0.0.1 signed by it, as PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("ehrchain test CA"))
        .issuer_name(_name("ehrchain test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (out / "node.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / "node.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return NetworkSettings(
        tls_cert=str(out / "node.pem"),
        tls_key=str(out / "node.key"),
        tls_ca=str(out / "ca.pem"),
        sync_interval_ms=300,
    )


@pytest.fixture
def tls_pair(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess, str, Actor]]:
    net = make_certificates(tmp_path / "tls")
    port_a, port_b = free_port(), free_port()
    made = init_node(
        tmp_path / "a", password=PASSWORD, chain_id="tls", port=port_a, kdf=KdfParams.FAST_FOR_TESTS
    )
    config = tmp_path / "a" / "node.toml"
    config.write_text(config.read_text() + "\n" + network_toml(net))
    member = init_member(
        tmp_path / "b",
        (tmp_path / "a" / "genesis.json").read_text(),
        password=PASSWORD,
        port=port_b,
        kdf=KdfParams.FAST_FOR_TESTS,
        net=net,
    )
    a, b = (
        NodeProcess(
            tmp_path / n, p, PASSWORD, tmp_path / f"{n}.log", scheme="https", verify=net.tls_ca
        )
        for n, p in (("a", port_a), ("b", port_b))
    )
    client = EhrClient(a.url, transport=httpx.HTTPTransport(verify=net.verify()))
    try:
        a.start()
        b.start()
        admin = Actor(made.admin, client)
        admin.admit_hospital("hospital-b", "Hospital B", member.identity)
        yield a, b, net.tls_ca, admin
    finally:
        client.close()
        b.stop()
        a.stop()


def test_nodes_join_sync_and_forward_over_verified_tls(
    tls_pair: tuple[NodeProcess, NodeProcess, str, Actor],
) -> None:
    a, b, ca, admin = tls_pair
    context = ssl.create_default_context(cafile=ca)
    assert a.url.startswith("https://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{a.port}/healthz", timeout=5)

    joined = httpx.post(f"{b.url}/register_with", json={"url": a.url}, verify=context, timeout=60)
    assert joined.status_code == 200, joined.text
    assert joined.json()["peers"] == [a.url]

    # Sent to B, forwarded to A over TLS, sealed by A, its block pushed back to B.
    with EhrClient(b.url, transport=httpx.HTTPTransport(verify=context)) as at_b:
        sent = Actor(admin.identity, at_b).admit_hospital("h2", "H2", new_identity("x"))
    assert sent.committed
    status_a = httpx.get(f"{a.url}/v1/status", verify=context).json()
    assert status_a["peers"] == [b.url]
    assert status_a["height"] == sent.height
    # The transaction reached A, and A's block B, on their streams (wss), not as requests.
    served_a = httpx.get(f"{a.url}/metrics", verify=context).text
    served_b = httpx.get(f"{b.url}/metrics", verify=context).text
    assert 'route="/v1/status"' in served_a  # the label form looked for, on routes served
    assert 'route="/register_with"' in served_b
    assert 'route="/p2p/txs"' not in served_a
    assert 'route="/add_block"' not in served_b
