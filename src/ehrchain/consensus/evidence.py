"""Evidence of double-signing: two conflicting messages under one validator's key.

An honest validator signs at most one proposal, one prevote and one precommit
per (height, round). Two different signed messages of one kind for the same
height and round — nil included, as in CometBFT's duplicate-vote evidence — can
only come from a faulty or malicious validator, and the pair proves it to
anyone holding the validator set: no trust in the reporter is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from ehrchain.consensus.errors import ConsensusError
from ehrchain.consensus.messages import (
    Proposal,
    SignedMessage,
    Verifier,
    signature_ok,
)
from ehrchain.core.types import Address, ChainId


class InvalidEvidence(ConsensusError):
    """The pair is not two conflicting messages validly signed by one validator."""


@dataclass(frozen=True, slots=True)
class DoubleSign:
    """Two conflicting signed messages of one kind, height, round and signer.

    Built with ``double_sign`` so the pair is ordered by signed bytes and two
    observers of the same misbehaviour hold equal evidence. Proposals are kept
    without their block: the signature covers only the block hash.
    """

    chain_id: ChainId
    first: SignedMessage
    second: SignedMessage

    @property
    def offender(self) -> Address:
        return self.first.signer

    @property
    def height(self) -> int:
        return self.first.height


def double_sign(chain_id: str, a: SignedMessage, b: SignedMessage) -> DoubleSign:
    """Evidence from two messages, in canonical order and without block payloads."""
    a, b = _strip(a), _strip(b)
    if b.signing_bytes(chain_id) < a.signing_bytes(chain_id):
        a, b = b, a
    return DoubleSign(ChainId(chain_id), a, b)


def _strip(msg: SignedMessage) -> SignedMessage:
    return replace(msg, block=b"") if isinstance(msg, Proposal) else msg


def check_evidence(
    evidence: DoubleSign,
    validators: Mapping[Address, bytes],
    verify: Verifier = signature_ok,
) -> None:
    """Raise InvalidEvidence unless ``evidence`` proves a validator double-signed.

    ``validators`` is the set at the evidence's height. Checks, in order:
      1. both messages are of the same kind, height, round and signer;
      2. they sign different bytes (a repeat is not a conflict);
      3. the signer is a validator;
      4. both signatures verify under the signer's key for the evidence's chain.
    """
    first, second = evidence.first, evidence.second
    if type(first) is not type(second):
        raise InvalidEvidence("the two messages are of different kinds")
    if (first.height, first.round) != (second.height, second.round):
        raise InvalidEvidence("the two messages are for different heights or rounds")
    if first.signer != second.signer:
        raise InvalidEvidence("the two messages have different signers")
    chain_id = evidence.chain_id
    if first.signing_bytes(chain_id) == second.signing_bytes(chain_id):
        raise InvalidEvidence("the two messages sign the same thing")
    public_key = validators.get(first.signer)
    if public_key is None:
        raise InvalidEvidence(f"{first.signer} is not a validator")
    for msg in (first, second):
        if not verify(public_key, msg.signing_bytes(chain_id), msg.signature):
            raise InvalidEvidence(f"a message is not signed by {first.signer}")
