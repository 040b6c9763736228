"""The genesis state: the consortium admin and the first validators, from a genesis file.

Every other account is created by transactions, so these are the only accounts
that exist without one. A validator may be the consortium admin itself (the
embedded single-node default); its account then keeps the admin role and it
is listed in ``validators``.

A proof-of-work chain also fixes its difficulty here (``pow_target_bits``): it
is part of the genesis state, so it is committed to by the genesis block's hash
and two chains that differ only in difficulty never accept each other's blocks.
Other chains leave it out, and their genesis files and blocks are unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ehrchain.ehr import fields
from ehrchain.ehr.errors import InvalidGenesis, MalformedPayload
from ehrchain.ehr.state import (
    POW_TARGET_KEY,
    VALIDATORS_KEY,
    Changes,
    acct_key,
    nonce_key,
    signer_key,
    state_root,
)
from ehrchain.ehr.values import ROLE_CONSORTIUM_ADMIN, ROLE_VALIDATOR, Account

__all__ = [
    "GenesisAccount",
    "GenesisConfig",
    "check_config",
    "genesis_state_root",
    "genesis_writes",
]

GenesisAccount = tuple[str, bytes, bytes]
"""(address, signing public key, encryption public key)."""

MAX_POW_TARGET_BITS = 64
"""A harder target would take centuries to mine: surely a mistake in the file."""


@dataclass(frozen=True, slots=True)
class GenesisConfig:
    """What a chain starts from; every node of a chain holds the same one."""

    chain_id: str
    timestamp_ms: int
    consortium_admin: GenesisAccount
    validators: tuple[GenesisAccount, ...]
    pow_target_bits: int | None = None
    """Proof-of-work difficulty (leading zero bits of every block hash); None: not a PoW chain."""

    def to_json(self) -> str:
        """The genesis file: keys in hex."""
        data: dict[str, object] = {
            "chain_id": self.chain_id,
            "timestamp_ms": self.timestamp_ms,
            "consortium_admin": _account_json(self.consortium_admin),
            "validators": [_account_json(v) for v in self.validators],
        }
        if self.pow_target_bits is not None:
            data["pow_target_bits"] = self.pow_target_bits
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GenesisConfig:
        """Parse and check a genesis file."""
        try:
            data = json.loads(text)
            config = cls(
                chain_id=data["chain_id"],
                timestamp_ms=data["timestamp_ms"],
                consortium_admin=_account_from_json(data["consortium_admin"]),
                validators=tuple(_account_from_json(v) for v in data["validators"]),
                pow_target_bits=data.get("pow_target_bits"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidGenesis(f"genesis file is malformed: {exc.__class__.__name__}") from exc
        check_config(config)
        return config


def _account_json(account: GenesisAccount) -> dict[str, str]:
    address, signing_key, encryption_key = account
    return {
        "address": address,
        "signing_key": signing_key.hex(),
        "encryption_key": encryption_key.hex(),
    }


def _account_from_json(value: Any) -> GenesisAccount:
    if not isinstance(value, dict) or set(value) != {"address", "signing_key", "encryption_key"}:
        raise InvalidGenesis("each account must have address, signing_key and encryption_key")
    return (
        str(value["address"]),
        bytes.fromhex(value["signing_key"]),
        bytes.fromhex(value["encryption_key"]),
    )


def _check_account(account: GenesisAccount, name: str) -> None:
    address, signing_key, encryption_key = account
    try:
        parsed = fields.address(address, f"{name}.address")
        fields.signing_key(signing_key, f"{name}.signing_key")
        fields.derived_address(parsed, signing_key, f"{name}.address")
        fields.encryption_key(encryption_key, f"{name}.encryption_key")
    except MalformedPayload as exc:
        raise InvalidGenesis(str(exc)) from exc


def check_config(config: GenesisConfig) -> None:
    """Raise InvalidGenesis unless the config can start a chain."""
    if not isinstance(config.chain_id, str) or not 0 < len(config.chain_id) <= 64:
        raise InvalidGenesis("chain_id must be 1 to 64 characters")
    ts = config.timestamp_ms
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise InvalidGenesis("timestamp_ms must be a non-negative integer")
    _check_account(config.consortium_admin, "consortium_admin")
    if not config.validators:
        raise InvalidGenesis("at least one validator is needed")
    for index, validator in enumerate(config.validators):
        _check_account(validator, f"validators[{index}]")
    addresses = [v[0] for v in config.validators]
    if len(set(addresses)) != len(addresses):
        raise InvalidGenesis("a validator is listed twice")
    for validator in config.validators:
        if validator[0] == config.consortium_admin[0] and validator != config.consortium_admin:
            raise InvalidGenesis("the admin is listed as a validator with other keys")
    bits = config.pow_target_bits
    if bits is not None and (
        isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_POW_TARGET_BITS
    ):
        raise InvalidGenesis(f"pow_target_bits must be an integer from 1 to {MAX_POW_TARGET_BITS}")


def genesis_writes(config: GenesisConfig) -> dict[str, bytes]:
    """The state at height 0: accounts (nonce 0), signer index, and the validator list."""
    check_config(config)
    out = Changes()
    admin, admin_key, admin_enc = config.consortium_admin
    _seed(out, admin, Account(ROLE_CONSORTIUM_ADMIN, admin_key, admin_enc, ""))
    for address, signing_key, encryption_key in config.validators:
        if address != admin:
            _seed(out, address, Account(ROLE_VALIDATOR, signing_key, encryption_key, ""))
    out.put(VALIDATORS_KEY, tuple((v[0], v[1]) for v in config.validators))
    if config.pow_target_bits is not None:
        out.put(POW_TARGET_KEY, config.pow_target_bits)
    return out.writes


def _seed(out: Changes, address: str, account: Account) -> None:
    out.put(acct_key(address), account)
    out.put(nonce_key(address), 0)
    out.put(signer_key(account.signing_key), address)


def genesis_state_root(config: GenesisConfig) -> bytes:
    """The state root of the genesis block (its parent root is 32 zero bytes)."""
    return state_root(bytes(32), dict(genesis_writes(config)))
