"""/add_block refuses forged blocks and unknown senders, and nothing changes (real processes).

B, a follower at genesis with no peers, is sent blocks over HTTP. Each forgery
is signed as a node request by an admitted node key (A's, as a compromised
validator would) so that it reaches B's block verification, which must refuse
it with a 4xx and leave B's head as it was. Requests not signed by an
admitted node are refused before any verification. The genuine block, sent
last, is accepted: the forgeries failed for their defects, not for the route.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ehrchain.consensus.certificate import make_certificate, sign_vote
from ehrchain.core import block as blockmod
from ehrchain.core import encoding
from ehrchain.core import tx as txmod
from ehrchain.core.identity import new_identity
from ehrchain.core.types import Address
from ehrchain.crypto.keystore import Identity
from ehrchain.node.peer_client import PeerClient, PeerError
from ehrchain.node.peers import sign_request
from ehrchain.node.service import wall_clock_ms
from network_nodes import Pair, head, make_pair

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CBOR = {"content-type": "application/cbor"}
EXPECTED = {
    "bad certificate signature": (400, "invalid_certificate"),
    "certificate by a non-validator": (400, "invalid_certificate"),
    "empty certificate": (400, "invalid_certificate"),
    "bad transaction signature": (401, "bad_signature"),
    "wrong state root": (400, "invalid_block"),
    "proposed by a non-validator": (403, "not_a_validator"),
    "Merkle root not matching": (400, "invalid_block"),
    "not extending the head": (409, "not_next"),
}
"""Each forgery is refused for its own defect (status, error code)."""


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    made = make_pair(tmp_path, "ehrchain-guard")
    try:
        made.a.start()
        made.admit_b()  # block 1 at A
        made.b.start()  # B stays at genesis: it has no peers
        yield made
    finally:
        made.stop()


def certified(
    header: blockmod.BlockHeader, txs: tuple[txmod.Transaction, ...], signer: Identity
) -> bytes:
    """A block whose certificate ``signer`` signed for exactly this header."""
    vote = sign_vote(
        signer.signing, Address(signer.address), header.chain_id, header.height, 0, header.hash
    )
    return blockmod.Block(header, txs, make_certificate(0, (vote,))).to_bytes()


def forgeries(genuine: blockmod.Block, validator: Identity) -> dict[str, bytes]:
    header, txs, cert = genuine.header, genuine.txs, genuine.certificate
    vote = cert.votes[0]
    flipped = vote.signature[:-1] + bytes([vote.signature[-1] ^ 1])
    body, signature = encoding.decode(txs[0].to_bytes())
    bad_tx = txmod.from_bytes(encoding.encode([body, signature[:-1] + bytes([signature[-1] ^ 1])]))
    bad_txs = (bad_tx, *txs[1:])
    rerooted = dataclasses.replace(
        header, tx_root=blockmod.tx_root(bad_txs), size=blockmod.tx_list_size(bad_txs)
    )
    stranger = new_identity("stranger")
    foreign = dataclasses.replace(header, proposer=Address(stranger.address))
    bad_vote = blockmod.CommitCertificate(cert.round, (blockmod.Vote(vote.validator, flipped),))
    return {
        "bad certificate signature": blockmod.Block(header, txs, bad_vote).to_bytes(),
        "certificate by a non-validator": certified(header, txs, stranger),
        "empty certificate": blockmod.Block(header, txs, blockmod.EMPTY_CERTIFICATE).to_bytes(),
        "bad transaction signature": certified(rerooted, bad_txs, validator),
        "wrong state root": certified(
            dataclasses.replace(header, state_root=hashlib.sha256(b"forged").digest()),
            txs,
            validator,
        ),
        "proposed by a non-validator": certified(foreign, txs, stranger),
        "Merkle root not matching": blockmod.Block(
            dataclasses.replace(header, tx_root=hashlib.sha256(b"x").digest()), txs, cert
        ).to_bytes(),
        "not extending the head": certified(
            dataclasses.replace(header, height=header.height + 1), txs, validator
        ),
    }


def test_forged_blocks_and_unknown_senders_are_refused(pair: Pair) -> None:
    with PeerClient(pair.a.url, pair.validator, pair.chain_id) as from_a:
        genuine_bytes = from_a.blocks(1, 1)[0]
    genuine = blockmod.block_from_bytes(genuine_bytes)
    before = head(pair.b.url)
    assert before[0] == 0

    with PeerClient(pair.b.url, pair.validator, pair.chain_id) as to_b:
        for name, data in forgeries(genuine, pair.validator).items():
            with pytest.raises(PeerError) as refused:
                to_b.push_block(data)
            assert (refused.value.status, refused.value.code) == EXPECTED[name], name
            assert head(pair.b.url) == before, name

        # Not signed, signed by a stranger's key, or a replayed signature: refused unread.
        url = f"{pair.b.url}/add_block"
        assert httpx.post(url, content=genuine_bytes, headers=CBOR).status_code == 403
        stranger = new_identity("stranger")
        signed = sign_request(
            stranger, pair.chain_id, "POST", "/add_block", genuine_bytes, wall_clock_ms()
        )
        answer = httpx.post(url, content=genuine_bytes, headers={**CBOR, **signed})
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "not_admitted"
        other_body = sign_request(
            pair.validator, pair.chain_id, "POST", "/add_block", b"other", wall_clock_ms()
        )
        answer = httpx.post(url, content=genuine_bytes, headers={**CBOR, **other_body})
        assert answer.status_code == 401
        assert head(pair.b.url) == before
        pages = sign_request(
            pair.validator, pair.chain_id, "GET", "/p2p/blocks", b"", wall_clock_ms()
        )
        assert httpx.get(f"{pair.b.url}/p2p/blocks", headers=pages).status_code == 200
        replayed = httpx.get(f"{pair.b.url}/p2p/blocks", headers=pages)
        assert replayed.status_code == 401
        assert replayed.json()["error"]["code"] == "replayed_request"

        # The genuine block, sent by an admitted node, is verified and committed.
        to_b.push_block(genuine_bytes)
    assert head(pair.b.url) == head(pair.a.url)
    assert head(pair.b.url)[1] == genuine.hash.hex()
