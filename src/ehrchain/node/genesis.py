"""The genesis block: height 0, no transactions, the initial state from genesis.json."""

from __future__ import annotations

from collections.abc import Sequence

from ehrchain.core import block as blockmod
from ehrchain.core.block import Block, BlockHeader
from ehrchain.core.types import Address, ChainId
from ehrchain.crypto.keystore import Identity
from ehrchain.ehr.genesis import GenesisConfig, genesis_writes
from ehrchain.ehr.state import state_root
from ehrchain.storage.ledger import Ledger

ZERO_ROOT = bytes(32)


def genesis_config(
    chain_id: str,
    admin: Identity,
    validators: Sequence[Identity],
    timestamp_ms: int,
    *,
    pow_target_bits: int | None = None,
) -> GenesisConfig:
    """The genesis of a chain; ``pow_target_bits`` makes it a proof-of-work chain."""
    return GenesisConfig(
        chain_id=chain_id,
        timestamp_ms=timestamp_ms,
        consortium_admin=(
            admin.address,
            admin.signing.public_key,
            admin.encryption.public_key,
        ),
        validators=tuple(
            (v.address, v.signing.public_key, v.encryption.public_key) for v in validators
        ),
        pow_target_bits=pow_target_bits,
    )


def genesis_block(config: GenesisConfig) -> tuple[Block, dict[str, bytes | None]]:
    """The deterministic genesis block and the state writes it commits to."""
    writes: dict[str, bytes | None] = dict(genesis_writes(config))
    header = BlockHeader(
        magic=blockmod.MAGIC,
        version=blockmod.VERSION,
        chain_id=ChainId(config.chain_id),
        size=0,
        tx_count=0,
        height=0,
        prev_hash=blockmod.GENESIS_PARENT,
        tx_root=blockmod.tx_root(()),
        timestamp_ms=config.timestamp_ms,
        target=0,
        nonce=0,
        state_root=state_root(ZERO_ROOT, writes),
        proposer=Address(config.consortium_admin[0]),
    )
    return Block(header, ()), writes


def commit_genesis(ledger: Ledger, config: GenesisConfig) -> Block:
    block, writes = genesis_block(config)
    ledger.commit_block(block, writes, [])
    ledger.set_meta("chain_id", config.chain_id.encode())
    ledger.set_meta("genesis_hash", block.hash)
    return block
