"""Genesis: the initial accounts and validators, and the genesis file."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from ehr_world import Actor

from ehrchain.ehr.errors import InvalidGenesis
from ehrchain.ehr.genesis import GenesisConfig, genesis_state_root, genesis_writes
from ehrchain.ehr.state import State, state_root
from ehrchain.ehr.values import ROLE_CONSORTIUM_ADMIN, ROLE_VALIDATOR

ADMIN = Actor.new()
V1 = Actor.new()
V2 = Actor.new()


def _entry(actor: Actor) -> tuple[str, bytes, bytes]:
    return (actor.address, actor.key.public_key, actor.enc)


CONFIG = GenesisConfig("ehr-test", 1_700_000_000_000, _entry(ADMIN), (_entry(V1), _entry(V2)))


def test_genesis_writes_accounts_nonces_and_validators() -> None:
    state = State(genesis_writes(CONFIG))
    admin = state.account(ADMIN.address)
    assert admin is not None
    assert (admin.role, admin.signing_key, admin.encryption_key) == (
        ROLE_CONSORTIUM_ADMIN,
        ADMIN.key.public_key,
        ADMIN.enc,
    )
    for validator in (V1, V2):
        account = state.account(validator.address)
        assert account is not None
        assert account.role == ROLE_VALIDATOR
        assert state.nonce(validator.address) == 0
        assert state.signer(validator.key.public_key) == validator.address
    assert state.validators() == ((V1.address, V1.key.public_key), (V2.address, V2.key.public_key))
    assert set(genesis_writes(CONFIG)) == {
        f"{prefix}/{a.address}" for prefix in ("acct", "nonce") for a in (ADMIN, V1, V2)
    } | {f"signer/{a.key.public_key.hex()}" for a in (ADMIN, V1, V2)} | {"validators"}


def test_the_admin_can_be_the_single_validator() -> None:
    config = replace(CONFIG, validators=(_entry(ADMIN),))
    state = State(genesis_writes(config))
    admin = state.account(ADMIN.address)
    assert admin is not None
    assert admin.role == ROLE_CONSORTIUM_ADMIN
    assert state.is_validator(ADMIN.address)


def test_json_round_trip_and_root() -> None:
    text = CONFIG.to_json()
    assert GenesisConfig.from_json(text) == CONFIG
    assert json.loads(text)["validators"][0]["signing_key"] == V1.key.public_key.hex()
    assert genesis_state_root(CONFIG) == state_root(bytes(32), dict(genesis_writes(CONFIG)))
    assert genesis_state_root(CONFIG) != genesis_state_root(
        replace(CONFIG, validators=(_entry(V1),))
    )


@pytest.mark.parametrize(
    "config",
    [
        replace(CONFIG, chain_id=""),
        replace(CONFIG, timestamp_ms=-1),
        replace(CONFIG, validators=()),
        replace(CONFIG, validators=(_entry(V1), _entry(V1))),
        replace(CONFIG, consortium_admin=(V1.address, ADMIN.key.public_key, ADMIN.enc)),
        replace(CONFIG, consortium_admin=(ADMIN.address, ADMIN.key.public_key, bytes(32))),
        replace(CONFIG, validators=((ADMIN.address, ADMIN.key.public_key, V1.enc),)),
        replace(CONFIG, validators=(("ehr1bad", V1.key.public_key, V1.enc),)),
    ],
)
def test_invalid_configs_are_refused(config: GenesisConfig) -> None:
    with pytest.raises(InvalidGenesis):
        genesis_writes(config)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{}",
        json.dumps({**json.loads(CONFIG.to_json()), "validators": [{"address": "x"}]}),
        json.dumps({**json.loads(CONFIG.to_json()), "chain_id": ""}),
        CONFIG.to_json().replace(V1.key.public_key.hex(), "zz"),
    ],
)
def test_malformed_genesis_files_are_refused(text: str) -> None:
    with pytest.raises(InvalidGenesis):
        GenesisConfig.from_json(text)


def test_a_pow_chain_fixes_its_difficulty_in_genesis_and_others_are_unchanged() -> None:
    pow_config = replace(CONFIG, pow_target_bits=12)
    assert GenesisConfig.from_json(pow_config.to_json()) == pow_config
    assert json.loads(pow_config.to_json())["pow_target_bits"] == 12
    assert "pow_target_bits" not in json.loads(CONFIG.to_json())  # existing files stay as they are
    assert State(genesis_writes(pow_config)).get("pow_target_bits") is not None
    assert "pow_target_bits" not in genesis_writes(CONFIG)
    # The difficulty is committed to by the genesis block: another one is another chain.
    roots = {
        genesis_state_root(c) for c in (CONFIG, pow_config, replace(CONFIG, pow_target_bits=13))
    }
    assert len(roots) == 3


@pytest.mark.parametrize("bits", [0, -1, 65, True, "12"])
def test_pow_difficulty_out_of_range_is_refused(bits: object) -> None:
    with pytest.raises(InvalidGenesis, match="pow_target_bits"):
        genesis_writes(replace(CONFIG, pow_target_bits=bits))  # type: ignore[arg-type]
