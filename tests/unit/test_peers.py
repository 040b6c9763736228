"""node.peers: who is an admitted node, signed node requests, the peer set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ehr_world import World

from ehrchain.core.identity import new_identity
from ehrchain.core.types import Address
from ehrchain.crypto.keystore import Identity
from ehrchain.node.peers import (
    MAX_PEERS,
    MAX_SKEW_MS,
    PEER_HEADER,
    PeerRefused,
    PeerSet,
    RequestChecker,
    admitted_key,
    normalise_url,
    sign_request,
)

NOW = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


def test_validators_and_hospital_admins_are_admitted_nobody_else() -> None:
    world = World()
    hospital = world.hospital()
    patient = world.patient(hospital)
    state = world.state
    assert admitted_key(state, world.validator.address) == world.validator.key.public_key
    assert admitted_key(state, hospital.address) == hospital.key.public_key
    assert admitted_key(state, patient.address) is None
    assert admitted_key(state, world.admin.address) is None
    assert admitted_key(state, new_identity("stranger").address) is None


def test_a_removed_validator_is_no_longer_admitted() -> None:
    world = World()
    extra = new_identity("v2")
    payload = {"address": extra.address, "signing_key": extra.signing.public_key}
    world.send(world.admin, "validator.add", payload)
    assert admitted_key(world.state, extra.address) == extra.signing.public_key
    world.send(world.admin, "validator.remove", {"address": extra.address})
    assert admitted_key(world.state, extra.address) is None


def checker_for(node: Identity, clock: Clock) -> RequestChecker:
    keys = {Address(node.address): node.signing.public_key}
    return RequestChecker("chain", keys.get, clock)


def test_a_signed_request_is_accepted_once() -> None:
    node, clock = new_identity("n"), Clock()
    checker = checker_for(node, clock)
    header = sign_request(node, "chain", "post", "/add_block", b"block", NOW)[PEER_HEADER]
    assert checker.check(header, "POST", "/add_block", b"block") == node.address
    with pytest.raises(PeerRefused) as replayed:
        checker.check(header, "POST", "/add_block", b"block")
    assert (replayed.value.status, replayed.value.code) == (401, "replayed_request")


def test_the_same_request_twice_in_one_millisecond_is_not_a_replay() -> None:
    """Ed25519 is deterministic: without the random nonce two identical requests
    (a page asked twice) signed at the same ms were refused as replays."""
    node, clock = new_identity("n"), Clock()
    checker = checker_for(node, clock)
    first = sign_request(node, "chain", "GET", "/p2p/status", b"", NOW)[PEER_HEADER]
    second = sign_request(node, "chain", "GET", "/p2p/status", b"", NOW)[PEER_HEADER]
    assert first != second
    assert checker.check(first, "GET", "/p2p/status", b"") == node.address
    assert checker.check(second, "GET", "/p2p/status", b"") == node.address


def test_the_signature_covers_the_nonce() -> None:
    node, clock = new_identity("n"), Clock()
    header = sign_request(node, "chain", "GET", "/p2p/status", b"", NOW)[PEER_HEADER]
    parts = header.split(" ")
    parts[3] = sign_request(node, "chain", "GET", "/p2p/status", b"", NOW)[PEER_HEADER].split()[3]
    with pytest.raises(PeerRefused) as refused:
        checker_for(node, clock).check(" ".join(parts), "GET", "/p2p/status", b"")
    assert (refused.value.status, refused.value.code) == (401, "bad_signature")


@pytest.mark.parametrize(
    ("method", "target", "body", "chain"),
    [
        ("GET", "/add_block", b"block", "chain"),
        ("POST", "/register_node", b"block", "chain"),
        ("POST", "/add_block", b"other", "chain"),
        ("POST", "/add_block", b"block", "another-chain"),
    ],
)
def test_the_signature_covers_method_target_body_and_chain(
    method: str, target: str, body: bytes, chain: str
) -> None:
    node, clock = new_identity("n"), Clock()
    header = sign_request(node, chain, method, target, body, NOW)[PEER_HEADER]
    with pytest.raises(PeerRefused) as refused:
        checker_for(node, clock).check(header, "POST", "/add_block", b"block")
    assert (refused.value.status, refused.value.code) == (401, "bad_signature")


def test_stale_unknown_and_malformed_requests_are_refused() -> None:
    node, clock = new_identity("n"), Clock()
    checker = checker_for(node, clock)
    old = sign_request(node, "chain", "GET", "/p2p/blocks", b"", NOW - MAX_SKEW_MS - 1)
    with pytest.raises(PeerRefused) as stale:
        checker.check(old[PEER_HEADER], "GET", "/p2p/blocks", b"")
    assert stale.value.code == "stale_request"
    stranger = sign_request(new_identity("s"), "chain", "GET", "/p2p/blocks", b"", NOW)
    with pytest.raises(PeerRefused) as unknown:
        checker.precheck(stranger[PEER_HEADER])
    assert (unknown.value.status, unknown.value.code) == (403, "not_admitted")
    good_nonce, good_sig = old[PEER_HEADER].split(" ")[3:]
    for header in (
        None,
        "",
        "v1 x",
        f"v1 {node.address} {NOW} {good_sig}",
        f"v2 {node.address} {NOW} {good_nonce} {good_sig}",
        f"v1 {node.address} notanumber {good_nonce} {good_sig}",
        f"v1 {node.address} {NOW} {good_nonce} !!!",
        f"v1 {node.address} {NOW} {good_nonce} {good_sig[:-4]}",
        f"v1 {node.address} {NOW} {good_nonce[:-4]} {good_sig}",
    ):
        with pytest.raises(PeerRefused) as malformed:
            checker.check(header, "GET", "/p2p/blocks", b"")
        assert malformed.value.status == 403


def test_peer_urls_are_base_urls() -> None:
    assert normalise_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    for bad in ("ftp://h", "http://", "http://h/x", "http://u:p@h", "http://h?x=1"):
        with pytest.raises(ValueError, match="peer URL"):
            normalise_url(bad)


def test_peer_set_skips_itself_bounds_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    peers = PeerSet("http://127.0.0.1:9000", path)
    assert not peers.add("http://127.0.0.1:9000/")
    assert peers.add("http://127.0.0.1:9001")
    assert not peers.add("http://127.0.0.1:9001")
    added = peers.add_all(f"http://127.0.0.1:{10_000 + i}" for i in range(2 * MAX_PEERS))
    assert len(peers) == MAX_PEERS
    assert len(added) == MAX_PEERS - 1
    assert json.loads(path.read_text()) == peers.urls()
    assert PeerSet("http://127.0.0.1:9000", path).urls() == peers.urls()
