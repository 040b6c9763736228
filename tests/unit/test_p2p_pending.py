"""Who may drop pending transactions that no block took in time: only a node that
never proposes. A BFT validator keeps them; it proposes from its own pool."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from ehrchain.core.identity import new_identity
from ehrchain.crypto.keystore import Identity, KdfParams
from ehrchain.node import settings as settings_mod
from ehrchain.node.genesis import genesis_config
from ehrchain.node.network import init_member
from ehrchain.node.p2p import P2P, NetworkSettings
from ehrchain.node.wiring import open_service


def _p2p(
    tmp_path: Path, consensus: str, me: Identity, validators: list[Identity], **settings: Any
) -> P2P:
    """A node's P2P wiring, not started; ``settings`` override its ``node.toml``."""
    admin = new_identity("admin", "consortium_admin")
    config = genesis_config("ehrchain-test", admin, validators, time.time_ns() // 1_000_000)
    init_member(
        tmp_path,
        config.to_json(),
        password="pw",
        port=8999,
        consensus=consensus,
        identity=me,
        kdf=KdfParams.FAST_FOR_TESTS,
    )
    if settings:
        settings_mod.write(dataclasses.replace(settings_mod.load(tmp_path), **settings))
    service = open_service(settings_mod.load(tmp_path))
    return P2P(service, me, NetworkSettings())


@pytest.mark.parametrize(
    ("consensus", "is_validator", "others", "proposes"),
    [
        ("bft", True, 3, True),  # one of four validators: proposes in its turn
        ("bft", False, 4, False),  # a follower of a BFT consortium
        ("solo", True, 0, True),  # the one validator seals alone
    ],
)
def test_only_nodes_that_never_propose_expire_pending(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    consensus: str,
    is_validator: bool,
    others: int,
    proposes: bool,
) -> None:
    monkeypatch.setenv(settings_mod.PASSWORD_ENV, "pw")
    me = new_identity("node", "")
    validators = [new_identity(f"v{i}", "") for i in range(others)]
    p2p = _p2p(tmp_path, consensus, me, [me, *validators] if is_validator else validators)
    try:
        assert p2p.proposes_blocks() is proposes
    finally:
        p2p.clients.close()  # nothing was started
        p2p.service.ledger.close()


@pytest.mark.parametrize("pause_ms", [0, 25, 400])
def test_the_bft_driver_pauses_after_a_commit_as_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pause_ms: int
) -> None:
    monkeypatch.setenv(settings_mod.PASSWORD_ENV, "pw")
    me = new_identity("node", "")
    others = [new_identity(f"v{i}", "") for i in range(3)]
    p2p = _p2p(tmp_path, "bft", me, [me, *others], commit_pause_ms=pause_ms)
    try:
        assert p2p.driver is not None
        assert p2p.driver.ctx.timeouts.commit_ms == pause_ms
    finally:
        p2p.clients.close()
        p2p.service.ledger.close()
