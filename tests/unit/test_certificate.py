"""Commit certificates: quorum sizes and every way a certificate can be wrong."""

from __future__ import annotations

import dataclasses

import pytest

from ehrchain.consensus.certificate import (
    check_certificate,
    make_certificate,
    max_faulty,
    quorum,
    sign_vote,
)
from ehrchain.consensus.errors import InvalidCertificate
from ehrchain.core import merkle
from ehrchain.core.address import address_from_public_key
from ehrchain.core.block import (
    GENESIS_PARENT,
    MAGIC,
    VERSION,
    BlockHeader,
    CommitCertificate,
    Vote,
)
from ehrchain.core.types import Address, BlockHash, ChainId
from ehrchain.crypto.signing import SigningKey

CHAIN = "ehrchain-test"
KEYS = tuple(SigningKey(bytes([i + 1]) * 32) for i in range(5))
ADDRESSES = tuple(address_from_public_key(k.public_key) for k in KEYS)
FOUR = {a: k.public_key for a, k in zip(ADDRESSES[:4], KEYS[:4], strict=True)}
OUTSIDER_KEY, OUTSIDER = KEYS[4], ADDRESSES[4]


def header(height: int = 7, chain_id: str = CHAIN) -> BlockHeader:
    return BlockHeader(
        magic=MAGIC,
        version=VERSION,
        chain_id=ChainId(chain_id),
        size=0,
        tx_count=0,
        height=height,
        prev_hash=GENESIS_PARENT,
        tx_root=merkle.EMPTY_ROOT,
        timestamp_ms=1_700_000_000_000,
        target=0,
        nonce=0,
        state_root=bytes(32),
        proposer=ADDRESSES[0],
    )


def vote(i: int, h: BlockHeader, round_: int = 0) -> Vote:
    return sign_vote(KEYS[i], ADDRESSES[i], h.chain_id, h.height, round_, h.hash)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (6, 5), (7, 5), (8, 6), (9, 7), (10, 7)],
)
def test_quorum_table(n: int, expected: int) -> None:
    assert quorum(n) == expected


@pytest.mark.parametrize("f", range(20))
def test_quorum_is_2f_plus_1_when_n_is_3f_plus_1(f: int) -> None:
    assert max_faulty(3 * f + 1) == f
    assert quorum(3 * f + 1) == 2 * f + 1


@pytest.mark.parametrize("n", range(1, 101))
def test_any_two_quorums_share_an_honest_validator(n: int) -> None:
    assert 2 * quorum(n) - n >= max_faulty(n) + 1
    assert quorum(n) <= n


@pytest.mark.parametrize("n", [0, -1, True])
def test_quorum_needs_at_least_one_validator(n: int) -> None:
    with pytest.raises(ValueError, match="at least one"):
        quorum(n)


def test_three_of_four_accepted() -> None:
    h = header()
    check_certificate(h, make_certificate(0, [vote(i, h) for i in (3, 0, 2)]), FOUR)


def test_all_four_accepted_in_a_later_round() -> None:
    h = header()
    check_certificate(h, make_certificate(2, [vote(i, h, 2) for i in range(4)]), FOUR)


def test_too_few_votes_rejected() -> None:
    h = header()
    with pytest.raises(InvalidCertificate, match=r"2 of 4 validators voted .* 3 needed"):
        check_certificate(h, make_certificate(0, [vote(0, h), vote(1, h)]), FOUR)
    with pytest.raises(InvalidCertificate, match="0 of 4"):
        check_certificate(h, CommitCertificate(0, ()), FOUR)


def test_duplicate_voter_rejected() -> None:
    h = header()
    cert = CommitCertificate(0, (vote(0, h), vote(1, h), vote(0, h)))
    with pytest.raises(InvalidCertificate, match="two votes from validator"):
        check_certificate(h, cert, FOUR)


def test_unknown_voter_rejected_even_beside_a_quorum() -> None:
    h = header()
    outsider = sign_vote(OUTSIDER_KEY, OUTSIDER, CHAIN, h.height, 0, h.hash)
    cert = make_certificate(0, [vote(0, h), vote(1, h), vote(2, h), outsider])
    with pytest.raises(InvalidCertificate, match="not a validator"):
        check_certificate(h, cert, FOUR)


@pytest.mark.parametrize(
    "signed_for",
    [
        {"block_hash": BlockHash(bytes(32))},
        {"height": 8},
        {"chain_id": "ehrchain-other"},
        {"round_": 1},
    ],
    ids=["other-block-hash", "other-height", "other-chain-id", "other-round"],
)
def test_vote_signed_for_something_else_rejected(signed_for: dict[str, object]) -> None:
    h = header()
    fields: dict[str, object] = {
        "chain_id": CHAIN,
        "height": h.height,
        "round_": 0,
        "block_hash": h.hash,
    }
    fields.update(signed_for)
    stray = sign_vote(KEYS[2], ADDRESSES[2], **fields)  # type: ignore[arg-type]
    cert = make_certificate(0, [vote(0, h), vote(1, h), stray])
    with pytest.raises(InvalidCertificate, match=f"vote from {ADDRESSES[2]} does not sign"):
        check_certificate(h, cert, FOUR)


def test_votes_for_another_header_do_not_certify_this_one() -> None:
    h = header()
    other = dataclasses.replace(h, state_root=b"\x01" * 32)
    cert = make_certificate(0, [vote(i, other) for i in range(4)])
    check_certificate(other, cert, FOUR)
    with pytest.raises(InvalidCertificate, match="does not sign"):
        check_certificate(h, cert, FOUR)


def test_vote_signed_with_another_validators_key_rejected() -> None:
    h = header()
    forged = sign_vote(KEYS[3], ADDRESSES[2], CHAIN, h.height, 0, h.hash)
    cert = make_certificate(0, [vote(0, h), vote(1, h), forged])
    with pytest.raises(InvalidCertificate, match="does not sign"):
        check_certificate(h, cert, FOUR)


def test_malformed_certificates_rejected() -> None:
    h = header()
    votes = (vote(0, h), vote(1, h), vote(2, h))
    with pytest.raises(InvalidCertificate, match="round"):
        check_certificate(h, CommitCertificate(-1, votes), FOUR)
    bad = Vote(ADDRESSES[3], "00" * 64)  # type: ignore[arg-type]
    with pytest.raises(InvalidCertificate, match="malformed vote"):
        check_certificate(h, CommitCertificate(0, (*votes, bad)), FOUR)
    with pytest.raises(InvalidCertificate, match="does not sign"):
        check_certificate(h, CommitCertificate(0, (*votes[:2], Vote(ADDRESSES[2], b""))), FOUR)


def test_empty_validator_set_rejected() -> None:
    h = header()
    with pytest.raises(InvalidCertificate, match="empty"):
        check_certificate(h, make_certificate(0, [vote(0, h)]), {})


def test_invalid_validator_key_rejected() -> None:
    h = header()
    validators = {**FOUR, ADDRESSES[2]: bytes(32)}
    cert = make_certificate(0, [vote(0, h), vote(1, h), vote(2, h)])
    with pytest.raises(InvalidCertificate, match="does not sign"):
        check_certificate(h, cert, validators)


def test_make_certificate_is_order_independent_and_refuses_duplicates() -> None:
    h = header()
    votes = [vote(i, h) for i in range(4)]
    cert = make_certificate(0, votes)
    assert cert == make_certificate(0, reversed(votes))
    assert [v.validator for v in cert.votes] == sorted(ADDRESSES[:4])
    with pytest.raises(InvalidCertificate, match="two votes"):
        make_certificate(0, [*votes, votes[1]])


def test_certificate_still_checks_after_its_wire_round_trip() -> None:
    h = header()
    cert = make_certificate(0, [vote(i, h) for i in (0, 1, 2)])
    decoded = CommitCertificate.from_fields(cert.to_fields())
    assert decoded == cert
    check_certificate(h, decoded, FOUR)
    tampered = CommitCertificate.from_fields([0, [[Address(ADDRESSES[0]), bytes(64)]]])
    with pytest.raises(InvalidCertificate):
        check_certificate(h, tampered, {ADDRESSES[0]: KEYS[0].public_key})
