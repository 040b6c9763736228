"""Catch-up with the verifier workers, and what a node behind its peers refuses.

Two in-process nodes of one chain over real SQLite files: a validator that
seals blocks (``solo``) and a follower that catches up from it through a peer
double that serves the validator's own blocks (the HTTP client has its tests
in the real-process suites).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from ehrchain.core import block as blockmod
from ehrchain.core import tx as txmod
from ehrchain.core.address import address_from_public_key
from ehrchain.core.identity import new_identity
from ehrchain.core.types import Address
from ehrchain.crypto.errors import InvalidSignature
from ehrchain.crypto.hpke import EncryptionKey
from ehrchain.crypto.keystore import Identity, KdfParams
from ehrchain.crypto.signing import SigningKey
from ehrchain.ehr.errors import BadNonce
from ehrchain.node import settings as settings_mod
from ehrchain.node import verifier
from ehrchain.node.errors import Rejected, Unavailable
from ehrchain.node.genesis import genesis_config
from ehrchain.node.network import init_member
from ehrchain.node.networked import NetworkedService
from ehrchain.node.peer_client import PeerClient
from ehrchain.node.sync import WORKER_BYTES, GapGrace, SyncError, catch_up
from ehrchain.node.wiring import open_service

CHAIN = "ehrchain-sync-test"
PER_BLOCK = 320
"""Hospital admissions per block: a page of two such blocks is over ``WORKER_BYTES``."""


@dataclasses.dataclass
class Chain:
    admin: Identity
    validator_key: Identity
    validator: NetworkedService
    follower: NetworkedService
    nonce: int = 0

    def admissions(self, count: int) -> list[bytes]:
        """``count`` signed ``hospital.admit`` transactions from the consortium admin."""
        out = []
        for _ in range(count):
            key = SigningKey.generate()
            payload = {
                "hospital_id": f"h{self.nonce}",
                "name": "General",
                "admin": {
                    "address": address_from_public_key(key.public_key),
                    "signing_key": key.public_key,
                    "encryption_key": EncryptionKey.generate().public_key,
                },
            }
            tx = txmod.build(
                "hospital.admit",
                CHAIN,
                address_from_public_key(self.admin.signing.public_key),
                self.nonce,
                payload,
                self.admin.signing,
            )
            self.nonce += 1
            out.append(tx.to_bytes())
        return out

    def seal(self, count: int) -> blockmod.Block:
        results = self.validator.submit_many(self.admissions(count))
        assert all(tx_id for tx_id, _ in results), results[:3]
        block = self.validator.mine()
        assert block is not None
        assert len(block.txs) == count
        return block


@pytest.fixture
def chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Chain]:
    monkeypatch.setenv(settings_mod.PASSWORD_ENV, "pw")
    admin = new_identity("admin", "consortium_admin")
    validator, follower = new_identity("v", ""), new_identity("f", "")
    config = genesis_config(CHAIN, admin, [validator], time.time_ns() // 1_000_000).to_json()
    services = []
    for name, me in (("v", validator), ("f", follower)):
        init_member(
            tmp_path / name,
            config,
            password="pw",
            port=8999,
            identity=me,
            kdf=KdfParams.FAST_FOR_TESTS,
            node_settings={"max_block_txs": 1000},
        )
        services.append(open_service(settings_mod.load(tmp_path / name)))
    made = Chain(admin, validator, services[0], services[1])
    try:
        yield made
    finally:
        for service in services:
            service.close()
            service.ledger.close()


class ServingPeer:
    """The validator's blocks, as a peer's ``/p2p/blocks`` serves them; ``alter``
    may change a block's bytes on the way."""

    url = "http://peer.test"

    def __init__(
        self, service: NetworkedService, alter: Callable[[bytes], bytes] = lambda b: b
    ) -> None:
        self._service = service
        self._alter = alter

    def status(self) -> dict[str, Any]:
        return {"chain_id": CHAIN, "height": self._service.head().height}

    def blocks(self, start: int, limit: int) -> list[bytes]:
        return [self._alter(b.to_bytes()) for b in self._service.blocks(start, limit)]


def _peer(peer: ServingPeer) -> PeerClient:
    return cast("PeerClient", peer)


def _count_worker_blocks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    original = verifier.VerifierPool.submit_blocks

    def counting(pool: verifier.VerifierPool, items: Any) -> Any:
        seen.append(len(items))
        return original(pool, items)

    monkeypatch.setattr(verifier.VerifierPool, "submit_blocks", counting)
    return seen


def test_a_large_page_is_checked_in_the_workers_and_reaches_the_same_head(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = [chain.seal(PER_BLOCK), chain.seal(PER_BLOCK)]
    assert sum(len(b.to_bytes()) for b in blocks) >= WORKER_BYTES
    seen = _count_worker_blocks(monkeypatch)
    assert catch_up(chain.follower, _peer(ServingPeer(chain.validator))) == 2
    assert seen == [2]
    assert chain.follower.head() == chain.validator.head()
    assert chain.follower.status()["state_root"] == chain.validator.status()["state_root"]


def test_a_small_page_is_checked_here(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    chain.seal(3)
    seen = _count_worker_blocks(monkeypatch)
    assert catch_up(chain.follower, _peer(ServingPeer(chain.validator))) == 1
    assert seen == []
    assert chain.follower.head() == chain.validator.head()


def _forge_signature(data: bytes, index: int, signer: Identity | None = None) -> bytes:
    """The block with one transaction's signature changed and its header (size, Merkle
    root) rebuilt to match; with ``signer`` (the validator) the commit certificate is
    signed again too, so that only the signature check can catch it."""
    block = blockmod.block_from_bytes(data)
    victim = block.txs[index]
    bad_sig = bytes([victim.signature[0] ^ 1]) + victim.signature[1:]
    forged_tx = txmod.Transaction(
        victim.kind,
        victim.chain_id,
        victim.sender,
        victim.nonce,
        victim.payload,
        victim.public_key,
        bad_sig,
    )
    txs = (*block.txs[:index], forged_tx, *block.txs[index + 1 :])
    header = dataclasses.replace(
        block.header, tx_root=blockmod.tx_root(txs), size=blockmod.tx_list_size(txs)
    )
    certificate = block.certificate
    if signer is not None:
        message = blockmod.commit_message(CHAIN, header.height, certificate.round, header.hash)
        vote = blockmod.Vote(Address(signer.address), signer.signing.sign(message))
        certificate = blockmod.CommitCertificate(certificate.round, (vote,))
    return blockmod.Block(header, txs, certificate).to_bytes()


def test_a_forged_signature_in_a_large_page_is_refused_and_nothing_after_it_commits(
    chain: Chain,
) -> None:
    first, _second = chain.seal(PER_BLOCK), chain.seal(PER_BLOCK)

    def alter(data: bytes) -> bytes:
        if blockmod.block_from_bytes(data).header.height == first.header.height + 1:
            return _forge_signature(data, 7, chain.validator_key)
        return data

    with pytest.raises(SyncError, match="signature"):
        catch_up(chain.follower, _peer(ServingPeer(chain.validator, alter)))
    assert chain.follower.head().hash == first.hash


def test_the_worker_check_and_the_checked_decode_agree_with_the_strict_decode(
    chain: Chain,
) -> None:
    data = chain.seal(20).to_bytes()
    assert verifier.check_block(data) is None
    assert blockmod.block_from_checked_bytes(data) == blockmod.block_from_bytes(data)
    verdict = verifier.check_block(_forge_signature(data, 3))
    assert verdict is not None
    assert verdict[0] == InvalidSignature.__name__
    malformed = verifier.check_block(data[:-5])
    assert malformed is not None
    assert malformed[0] == "InvalidBlock"


def test_gossiped_transactions_already_past_are_refused_before_their_signature(
    chain: Chain,
) -> None:
    sent = chain.admissions(2)
    chain.validator.submit_many(sent)
    chain.validator.mine()
    replay = txmod.from_bytes(sent[0])
    forged = dataclasses.replace(replay, signature=bytes(64), _encoded=b"", _id=b"").to_bytes()
    from_peer = chain.validator.submit_from_peer([forged])
    assert isinstance(from_peer[0][1], BadNonce)
    from_client = chain.validator.submit_many([forged])
    assert isinstance(from_client[0][1], InvalidSignature)


def test_gossip_of_transactions_pending_or_in_a_recent_block_is_refused_undecoded(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = chain.admissions(3)
    chain.validator.submit_many(sent[:2])
    committed = chain.validator.mine()
    assert committed is not None
    chain.validator.submit_many(sent[2:])
    decoded: list[bytes] = []
    strict = txmod.from_bytes

    def counting(data: bytes) -> txmod.Transaction:
        decoded.append(data)
        return strict(data)

    monkeypatch.setattr(txmod, "from_bytes", counting)
    from_peer = chain.validator.submit_from_peer(sent)
    assert [getattr(error, "code", None) for _, error in from_peer] == ["duplicate"] * 3
    assert decoded == []  # one hash each, no decode
    # Blocks undone by a reorganisation are forgotten: their transactions may come again.
    chain.validator.roll_back_to(committed.header.height - 1)
    decoded.clear()
    again = chain.validator.submit_from_peer(sent[:2])
    assert [error for _, error in again] == [None, None]
    assert decoded == sent[:2]


def test_a_node_behind_its_peers_refuses_gossip_and_pushed_blocks(chain: Chain) -> None:
    block = chain.seal(2)
    chain.follower.syncing_to(block.header.height + 5)
    with pytest.raises(Unavailable):
        chain.follower.submit_from_peer(chain.admissions(1))
    with pytest.raises(Unavailable):
        chain.follower.add_block(block.to_bytes())
    chain.follower.syncing_to(-1)
    chain.follower.add_block(block.to_bytes())
    assert chain.follower.head().hash == block.hash
    with pytest.raises(Rejected) as again:
        chain.follower.add_block(block.to_bytes())
    assert again.value.code == "not_next"


def test_a_proposals_foreign_transactions_are_checked_in_the_workers(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = chain.seal(PER_BLOCK).to_bytes()
    forged = _forge_signature(data, 11)
    chain.follower.decode_block(forged)  # the forged one is not remembered as verified

    block = chain.follower.decode_block(data)  # none pending at the follower: all foreign

    def refuse(_tx: txmod.Transaction) -> None:
        raise AssertionError("verified again on the consensus thread")

    with monkeypatch.context() as patched:
        patched.setattr(txmod.Transaction, "verify_signature", refuse)
        chain.follower.check_block(block)
    with pytest.raises(InvalidSignature):
        chain.follower.check_block(chain.follower.decode_block(forged))


def test_a_one_block_gap_is_left_to_the_driver_only_for_the_grace() -> None:
    now = [100.0]
    grace = GapGrace(1.0, clock=lambda: now[0])
    assert grace.wait(5, 6)  # first seen: leave it to consensus
    now[0] += 0.5
    assert grace.wait(5, 6)
    now[0] += 0.6
    assert not grace.wait(5, 6)  # outlived the grace at the same height: fetch
    assert grace.wait(6, 7)  # the head moved: a new gap, a new grace
    assert not grace.wait(6, 9)  # more than one block behind: fetch at once
    assert not grace.wait(6, 6)
