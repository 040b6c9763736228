"""What every kind's rule receives, and the checks several kinds share.

A handler gets a ``Call`` (the state before the transaction, the transaction,
the block context, the sender's account and the ``Changes`` to fill) and the
parsed payload. It raises one typed error on the first rule that fails, or
puts its writes and emits its events. It never sees another transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ehrchain.core.tx import Transaction
from ehrchain.core.types import Address
from ehrchain.ehr import policy
from ehrchain.ehr.errors import NotAuthorised, NotFound, NotVerified, UnknownAccount
from ehrchain.ehr.kinds import Rewrap
from ehrchain.ehr.state import BlockContext, Changes, Event, State, rewrap_key
from ehrchain.ehr.values import ROLE_PROVIDER, Account, Patient, Provider, Record


@dataclass(frozen=True, slots=True)
class Call:
    """One transaction being executed against one state."""

    state: State
    tx: Transaction
    ctx: BlockContext
    account: Account
    out: Changes

    @property
    def sender(self) -> Address:
        return self.tx.sender

    def emit(self, subject: str, kind: str = "", record_id: str = "", version: int = 0) -> None:
        """Record an audit event about ``subject`` (the patient, when there is one)."""
        self.out.emit(
            Event(subject, kind or self.tx.kind, self.tx.sender, record_id, version, self.tx.tx_id)
        )


Handler = Callable[[Call, Any], None]


def require_role(call: Call, *roles: str) -> None:
    if call.account.role not in roles:
        raise NotAuthorised(f"sender_role_{'_or_'.join(roles)}")


def require_account(state: State, address: str) -> Account:
    account = state.account(address)
    if account is None:
        raise UnknownAccount(f"account {address} is not registered")
    return account


def require_patient(state: State, address: str) -> Patient:
    patient = state.patient(address)
    if patient is None:
        raise NotFound(f"patient {address} is not registered")
    return patient


def require_verified_provider(call: Call) -> Provider:
    """The sender is a provider that a validator has verified."""
    if call.account.role != ROLE_PROVIDER:
        raise NotAuthorised("sender_is_provider")
    provider = call.state.provider(call.sender)
    if provider is None or not provider.verified:
        raise NotVerified(f"provider {call.sender} has not been verified")
    return provider


def acting_for(call: Call, named: Address | None) -> Address:
    """The patient a patient-or-delegate transaction acts for (the sender by default)."""
    patient = named if named is not None else call.sender
    require_patient(call.state, patient)
    policy.PATIENT_OR_DELEGATE.check(
        policy.Access(call.state, call.sender, patient, call.ctx.timestamp_ms)
    )
    return patient


def put_rewraps(
    call: Call,
    patient: Address,
    reader: Address,
    rewraps: tuple[Rewrap, ...],
    allowed: Callable[[str, Record], bool] = lambda _rid, _rec: True,
) -> None:
    """Store re-wrapped keys for ``reader``; each must name an existing version of this patient."""
    for item in rewraps:
        record = call.state.record(item.record_id)
        if record is None or record.patient != patient:
            raise NotFound(f"rewrap names record {item.record_id}, not one of this patient's")
        if not 1 <= item.version <= record.latest:
            raise NotFound(
                f"rewrap names version {item.version} of {item.record_id}: no such version"
            )
        if not allowed(item.record_id, record):
            raise NotAuthorised("rewrap_within_scope", f"record {item.record_id}")
        call.out.put(rewrap_key(item.record_id, item.version, reader), item.wrapped)


def with_appended(items: tuple[Address, ...], item: Address) -> tuple[Address, ...] | None:
    """``items`` plus ``item``, or None when it is there already (no write needed)."""
    return None if item in items else (*items, item)
