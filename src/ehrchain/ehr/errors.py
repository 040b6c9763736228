"""Errors raised by the EHR state machine: one typed error per rule.

    EhrError
    ├── WrongChain          the transaction names another chain
    ├── UnknownAccount      the sender (or a named account) is not registered
    ├── InactiveAccount     the sender's account is not active
    ├── WrongKey            tx.public_key is not the account's current signing key
    ├── BadNonce            replay (got < expected) or gap (got > expected)
    ├── UnknownKind         no such transaction kind
    ├── MalformedPayload    a payload field has the wrong type, size or value
    ├── NotAuthorised       a rule denied the sender (deny by default)
    ├── NotVerified         the provider has not been verified by a validator
    ├── AlreadyExists       the thing to create exists already
    ├── NotFound            the thing named does not exist (or is not active)
    ├── StaleEpoch          the record's key epoch is not the patient's current one
    ├── WrongReaders        the wrapped keys are not exactly the required readers
    ├── BadVersion          an amendment does not name the next version
    ├── Immutable           an amendment changes a field fixed at creation
    ├── Expired             a grant or expiry time is already past
    ├── BadSignature        the transaction signature does not verify
    ├── InvalidGenesis      a genesis configuration that cannot start a chain
    └── InvalidBlockTx      transaction ``index`` of a block failed with ``error``

Every error has a short machine ``code`` (the API maps codes to status codes in
one place) and a message that names only addresses, ids, fields and numbers:
never payload contents, so no health data reaches logs or HTTP responses.
"""

from __future__ import annotations

from collections.abc import Iterable


class EhrError(Exception):
    """Base of every error the EHR state machine raises."""

    code: str = "ehr_error"


class WrongChain(EhrError):
    code = "wrong_chain"


class UnknownAccount(EhrError):
    code = "unknown_account"


class InactiveAccount(EhrError):
    code = "inactive_account"


class WrongKey(EhrError):
    code = "wrong_key"


class BadNonce(EhrError):
    """The nonce is not the sender's next one; ``got < expected`` is a replay."""

    code = "bad_nonce"

    def __init__(self, expected: int, got: int) -> None:
        self.expected = expected
        self.got = got
        what = "replayed" if got < expected else "out of order"
        super().__init__(f"nonce {got} is {what}: the next nonce is {expected}")


class UnknownKind(EhrError):
    code = "unknown_kind"


class MalformedPayload(EhrError):
    """A payload field is wrong; ``field`` names it (the value is never echoed)."""

    code = "malformed_payload"

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"payload field {field!r}: {problem}")


class NotAuthorised(EhrError):
    """Denied by default; ``rule`` names the rule that did not allow the sender."""

    code = "not_authorised"

    def __init__(self, rule: str, detail: str = "") -> None:
        self.rule = rule
        super().__init__(f"denied by rule {rule!r}" + (f": {detail}" if detail else ""))


class NotVerified(EhrError):
    code = "not_verified"


class AlreadyExists(EhrError):
    code = "already_exists"


class NotFound(EhrError):
    code = "not_found"


class StaleEpoch(EhrError):
    code = "stale_epoch"

    def __init__(self, expected: int, got: int) -> None:
        self.expected = expected
        self.got = got
        super().__init__(f"key epoch {got} is stale: the patient's epoch is {expected}")


class WrongReaders(EhrError):
    """The wrapped-key set differs from the required reader set."""

    code = "wrong_readers"

    def __init__(self, missing: Iterable[str], extra: Iterable[str]) -> None:
        self.missing = tuple(sorted(missing))
        self.extra = tuple(sorted(extra))
        super().__init__(
            f"wrapped keys must be exactly the required readers; "
            f"missing {list(self.missing)}, not allowed {list(self.extra)}"
        )


class BadVersion(EhrError):
    code = "bad_version"

    def __init__(self, expected: int, got: int) -> None:
        self.expected = expected
        self.got = got
        super().__init__(f"version {got} is not the next version {expected}")


class Immutable(EhrError):
    code = "immutable"

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"field {field!r} cannot change across versions")


class Expired(EhrError):
    code = "expired"


class BadSignature(EhrError):
    code = "bad_signature"


class InvalidGenesis(EhrError):
    code = "invalid_genesis"


class InvalidBlockTx(EhrError):
    """A block is invalid because one of its transactions fails."""

    code = "invalid_block_tx"

    def __init__(self, index: int, error: EhrError) -> None:
        self.index = index
        self.error = error
        super().__init__(f"transaction {index} of the block fails: [{error.code}] {error}")
