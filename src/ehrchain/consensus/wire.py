"""Wire form of consensus messages and evidence: canonical encoding, checked on decode.

A message is ``encode([kind, ...fields])`` with the kind a short string, so
the node can carry any consensus message in one HTTP body. Decoding checks the
shape of every field (types, ranges, 32-byte hashes, 64-byte signatures, valid
addresses) and raises InvalidMessage; it does not check signatures — the
handlers do, against the validator set of the message's height.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ehrchain.consensus.errors import ConsensusError
from ehrchain.consensus.evidence import DoubleSign, check_evidence
from ehrchain.consensus.messages import (
    NO_ROUND,
    Committed,
    NetworkMessage,
    Precommit,
    Prevote,
    Proposal,
    SignedMessage,
    Status,
)
from ehrchain.consensus.pow_chain import BlockMsg, GetBlock, PowNetworkMessage
from ehrchain.core import encoding
from ehrchain.core.address import parse_address
from ehrchain.core.block import CommitCertificate, block_from_bytes
from ehrchain.core.errors import CoreError
from ehrchain.core.types import Address, BlockHash, ChainId
from ehrchain.crypto.signing import SIGNATURE_SIZE

WireMessage = NetworkMessage | PowNetworkMessage
MAX_ROUND: Final = 2**31
HASH_SIZE: Final = 32


class InvalidMessage(ConsensusError):
    """Bytes that are not a well-formed consensus message or evidence."""


def encode_message(msg: WireMessage) -> bytes:
    return encoding.encode(_fields(msg))


def decode_message(data: bytes) -> WireMessage:
    """Parse a message, raising InvalidMessage for anything malformed."""
    try:
        fields = encoding.decode(data)
    except CoreError as exc:
        raise InvalidMessage(f"undecodable message: {exc}") from exc
    return _parse(fields)


def encode_evidence(evidence: DoubleSign) -> bytes:
    return encoding.encode([evidence.chain_id, _fields(evidence.first), _fields(evidence.second)])


def decode_evidence(data: bytes) -> DoubleSign:
    """Parse evidence (shape only: ``evidence.check_evidence`` decides if it proves anything)."""
    try:
        chain_id, first, second = encoding.decode(data)
    except (CoreError, ValueError, TypeError) as exc:
        raise InvalidMessage(f"undecodable evidence: {exc}") from exc
    a, b = _parse(first), _parse(second)
    if not isinstance(chain_id, str):
        raise InvalidMessage("evidence must name its chain")
    if not isinstance(a, Proposal | Prevote | Precommit):
        raise InvalidMessage("evidence must hold two signed messages")
    if not isinstance(b, Proposal | Prevote | Precommit):
        raise InvalidMessage("evidence must hold two signed messages")
    return DoubleSign(ChainId(chain_id), a, b)


def evidence_check(proof: bytes, validators: Mapping[Address, bytes]) -> tuple[Address, int]:
    """The ``validator.evidence`` judge (``ehr.state.EvidenceCheck``): who double-signed where.

    Raises ValueError unless ``proof`` is encoded double-sign evidence that
    ``check_evidence`` accepts against ``validators``.
    """
    try:
        evidence = decode_evidence(proof)
        check_evidence(evidence, validators)
    except ConsensusError as exc:
        raise ValueError(str(exc)) from None
    return evidence.offender, evidence.height


def _fields(msg: WireMessage | SignedMessage) -> list[Any]:
    if isinstance(msg, Proposal):
        signed = [msg.height, msg.round, msg.block_hash, msg.valid_round, msg.proposer]
        return ["proposal", *signed, msg.signature, msg.block]
    if isinstance(msg, Prevote | Precommit):
        kind = "prevote" if isinstance(msg, Prevote) else "precommit"
        return [kind, msg.height, msg.round, msg.block_hash, msg.validator, msg.signature]
    if isinstance(msg, Status):
        return ["status", msg.height, msg.sender]
    if isinstance(msg, Committed):
        return ["committed", msg.height, msg.block, msg.certificate.to_fields()]
    if isinstance(msg, BlockMsg):
        return ["pow/block", msg.block.to_bytes()]
    return ["pow/get", msg.block_hash, msg.sender]


_ARITY: Final = {
    "proposal": 8,
    "prevote": 6,
    "precommit": 6,
    "status": 3,
    "committed": 4,
    "pow/block": 2,
    "pow/get": 3,
}


def _parse(fields: Any) -> WireMessage:
    if not isinstance(fields, tuple) or not fields or fields[0] not in _ARITY:
        raise InvalidMessage("not a consensus message")
    kind = fields[0]
    if len(fields) != _ARITY[kind]:
        raise InvalidMessage(f"{kind} must have {_ARITY[kind] - 1} fields")
    if kind == "proposal":
        _, height, round_, block_hash, valid_round, proposer, signature, block = fields
        round_ = _count(round_, "round", MAX_ROUND)
        if not NO_ROUND <= _int(valid_round, "valid_round") < round_:
            raise InvalidMessage("valid_round must be -1 or below the round")
        return Proposal(
            _count(height, "height"),
            round_,
            _hash(block_hash),
            valid_round,
            _address(proposer),
            _signature(signature),
            _bytes(block, "block"),
        )
    if kind in ("prevote", "precommit"):
        _, height, round_, block_hash, validator, signature = fields
        cls = Prevote if kind == "prevote" else Precommit
        return cls(
            _count(height, "height"),
            _count(round_, "round", MAX_ROUND),
            None if block_hash is None else _hash(block_hash),
            _address(validator),
            _signature(signature),
        )
    if kind == "status":
        return Status(_count(fields[1], "height"), _address(fields[2]))
    if kind == "committed":
        try:
            certificate = CommitCertificate.from_fields(fields[3])
        except CoreError as exc:
            raise InvalidMessage(str(exc)) from exc
        return Committed(_count(fields[1], "height"), _bytes(fields[2], "block"), certificate)
    if kind == "pow/block":
        try:
            return BlockMsg(block_from_bytes(_bytes(fields[1], "block")))
        except CoreError as exc:
            raise InvalidMessage(f"malformed block: {exc}") from exc
    return GetBlock(_hash(fields[1]), _address(fields[2]))


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessage(f"{name} must be an integer")
    return value


def _count(value: Any, name: str, limit: int = 2**63) -> int:
    if not 0 <= _int(value, name) < limit:
        raise InvalidMessage(f"{name} out of range")
    return int(value)


def _bytes(value: Any, name: str) -> bytes:
    if not isinstance(value, bytes):
        raise InvalidMessage(f"{name} must be bytes")
    return value


def _hash(value: Any) -> BlockHash:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise InvalidMessage("block hash must be 32 bytes")
    return BlockHash(value)


def _signature(value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != SIGNATURE_SIZE:
        raise InvalidMessage(f"signature must be {SIGNATURE_SIZE} bytes")
    return value


def _address(value: Any) -> Address:
    try:
        return parse_address(value)
    except CoreError as exc:
        raise InvalidMessage(f"bad address: {exc}") from exc
