"""Catch-up under proof of work: where a peer's chain leaves ours, and its blocks from there.

Under BFT a peer's chain either extends ours or is refused. Under proof of work
it may fork below our head and still be the better chain, so catch-up finds
the highest height where both chains hold the same block (comparing hashes
page by page, at most ``keep_depth`` below our head) and hands the peer's
blocks above it to the fork choice (``PowDriver.receive_block``): every block is
checked for work and seal there and fully verified when it is applied, and
which chain the node follows is decided by cumulative work, never by the
peer's word. A peer with less work than us (lower height, at the chain's one
fixed target) has nothing to offer; one whose tip we already hold neither.
"""

from __future__ import annotations

import threading
from typing import Final, Protocol

from ehrchain.consensus.errors import ConsensusError
from ehrchain.core import block as blockmod
from ehrchain.core.errors import CoreError
from ehrchain.crypto.errors import CryptoError
from ehrchain.ehr.errors import EhrError
from ehrchain.node.errors import NodeError
from ehrchain.node.peer_client import PeerClient
from ehrchain.node.service import NodeService
from ehrchain.node.sync import PAGE, SyncError
from ehrchain.storage.ledger import ChainHead

__all__ = ["BlockTree", "catch_up_by_work", "fork_height"]

REFUSED: Final = (NodeError, ConsensusError, CoreError, CryptoError, EhrError)


class BlockTree(Protocol):
    """The fork choice catch-up feeds (``node.pow_driver.PowDriver``)."""

    @property
    def keep_depth(self) -> int: ...
    def knows(self, block_hash: bytes) -> bool: ...
    def receive_block(self, data: bytes) -> ChainHead: ...


def catch_up_by_work(
    tree: BlockTree,
    service: NodeService,
    client: PeerClient,
    stop: threading.Event | None = None,
) -> int:
    """Give ``tree`` the blocks of ``client``'s peer above the fork point; how many.

    Raises SyncError when the peer serves another chain, forks deeper than the
    tree follows, or sends a block the fork choice refuses; PeerError when the
    peer cannot be asked.
    """
    given = 0
    start: int | None = None
    while stop is None or not stop.is_set():
        status = client.status()
        if status.get("chain_id") != service.chain_id:
            raise SyncError(f"{client.url} serves another chain")
        theirs = int(status.get("height", -1))
        head = service.head()
        if theirs < head.height or tree.knows(_hash(status.get("head_hash"))):
            return given
        if start is None:
            start = fork_height(service, client, head.height, tree.keep_depth) + 1
        if start > theirs:
            return given
        page = client.blocks(start, min(PAGE, theirs - start + 1))
        if not page:
            return given
        for data in page:
            try:
                tree.receive_block(data)
            except REFUSED as exc:
                raise SyncError(f"a block from {client.url} is refused: {exc}") from exc
        given += len(page)
        start = _height(page[-1]) + 1
    return given


def fork_height(service: NodeService, client: PeerClient, top: int, depth: int) -> int:
    """The highest height at or below ``top`` where the peer's block is ours too.

    Looks no deeper than ``depth`` below ``top``: a fork below that is not
    followed (``pow_chain`` prunes its tree there too).
    """
    lowest = max(0, top - depth)
    high = top
    while high >= lowest:
        low = max(lowest, high - PAGE + 1)
        ours = {b.header.height: b.hash for b in service.blocks(low, high - low + 1)}
        for data in reversed(client.blocks(low, high - low + 1)):
            block = _decode(client, data)
            if ours.get(block.header.height) == block.hash:
                return block.header.height
        high = low - 1
    raise SyncError(f"{client.url}'s chain shares no block with ours from height {lowest} up")


def _decode(client: PeerClient, data: bytes) -> blockmod.Block:
    try:
        return blockmod.block_from_bytes(data)
    except CoreError as exc:
        raise SyncError(f"{client.url} sent an undecodable block: {exc}") from exc


def _height(data: bytes) -> int:
    return blockmod.block_from_bytes(data).header.height


def _hash(value: object) -> bytes:
    try:
        return bytes.fromhex(str(value))
    except ValueError:
        return b""
