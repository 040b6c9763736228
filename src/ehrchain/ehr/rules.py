"""The EHR state transition: ``execute(state, tx, ctx) -> Effects``, pure and deny-by-default.

Checks run in this order, one typed error each (like execution-specs'
state_transition checklist):

1. the transaction is for this chain                         WrongChain
2. the sender has an account, and it is active               UnknownAccount, InactiveAccount
3. tx.public_key is the account's current signing key        WrongKey
4. tx.nonce is the sender's next nonce                       BadNonce (replay or gap)
5. the kind is known                                         UnknownKind
6. the payload is well formed                                MalformedPayload
7. the kind's own authorisation and rules                    NotAuthorised, NotFound, ...
8. effects: the kind's writes and events, then nonce + 1

The signature is NOT checked here: the node verifies it once when it decodes a
transaction (``core.tx.verified_from_bytes``) or a block, before execution, so
a block is not verified twice. ``verify_and_execute`` does both for callers
that hold an unverified transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ehrchain.core.tx import Transaction
from ehrchain.crypto.errors import CryptoError
from ehrchain.ehr import rules_consent as consent
from ehrchain.ehr import rules_identity as identity
from ehrchain.ehr import rules_records as records
from ehrchain.ehr.errors import (
    BadNonce,
    BadSignature,
    InactiveAccount,
    UnknownAccount,
    UnknownKind,
    WrongChain,
    WrongKey,
)
from ehrchain.ehr.kinds import PAYLOADS
from ehrchain.ehr.rules_base import Call, Handler
from ehrchain.ehr.state import BlockContext, Changes, Effects, State, nonce_key
from ehrchain.ehr.values import ACTIVE

__all__ = ["KINDS", "BlockContext", "KindRule", "apply_tx", "execute", "verify_and_execute"]


@dataclass(frozen=True, slots=True)
class KindRule:
    """A kind's payload class and the handler that applies it."""

    payload: type[Any]
    handler: Handler


_HANDLERS: Final[Mapping[str, Handler]] = {
    "hospital.admit": identity.hospital_admit,
    "validator.add": identity.validator_add,
    "validator.remove": identity.validator_remove,
    "validator.evidence": identity.validator_evidence,
    "patient.register": identity.patient_register,
    "provider.register": identity.provider_register,
    "provider.verify": identity.provider_verify,
    "key.rotate": identity.key_rotate,
    "consent.authorise": consent.consent_authorise,
    "consent.withdraw": consent.consent_withdraw,
    "access.request": consent.access_request,
    "access.deny": consent.access_deny,
    "access.grant": consent.access_grant,
    "access.revoke": consent.access_revoke,
    "delegate.add": consent.delegate_add,
    "delegate.remove": consent.delegate_remove,
    "access.break_glass": consent.break_glass,
    "keys.rewrap": consent.keys_rewrap,
    "record.create": records.record_create,
    "record.amend": records.record_amend,
    "record.read": records.record_read,
}

KINDS: Final[Mapping[str, KindRule]] = {
    kind: KindRule(PAYLOADS[kind], handler) for kind, handler in _HANDLERS.items()
}
"""Kind name -> (payload class, handler); every kind of ``kinds.PAYLOADS``."""


def execute(state: State, tx: Transaction, ctx: BlockContext) -> Effects:
    """The writes and events of one transaction (signature already verified), or an EhrError."""
    if tx.chain_id != ctx.chain_id:
        raise WrongChain(f"transaction is for chain {tx.chain_id!r}, not {ctx.chain_id!r}")
    account = state.account(tx.sender)
    if account is None:
        raise UnknownAccount(f"sender {tx.sender} is not registered")
    if account.status != ACTIVE:
        raise InactiveAccount(f"sender {tx.sender} is {account.status}")
    if tx.public_key != account.signing_key:
        raise WrongKey(f"public_key is not the current signing key of {tx.sender}")
    expected = state.nonce(tx.sender)
    if tx.nonce != expected:
        raise BadNonce(expected, tx.nonce)
    rule = KINDS.get(tx.kind)
    if rule is None:
        raise UnknownKind(f"unknown transaction kind {tx.kind[:64]!r}")
    payload = rule.payload.from_payload(tx.payload)
    out = Changes()
    rule.handler(Call(state, tx, ctx, account, out), payload)
    out.put(nonce_key(tx.sender), expected + 1)
    return out.effects()


def apply_tx(state: State, tx: Transaction, ctx: BlockContext) -> State:
    """The state after ``tx``; raises (and changes nothing) if any rule fails."""
    return state.updated(execute(state, tx, ctx))


def verify_and_execute(state: State, tx: Transaction, ctx: BlockContext) -> Effects:
    """Verify the signature against tx.public_key, then ``execute``."""
    try:
        tx.verify_signature()
    except CryptoError as exc:
        raise BadSignature(f"signature of {tx.sender}'s transaction does not verify") from exc
    return execute(state, tx, ctx)
