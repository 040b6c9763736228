"""The node service of a node with peers: the same service, plus what the network needs.

``NetworkedService`` only wraps ``NodeService``'s entry points; it never
changes how a transaction is admitted or a block verified. Around them it:
- forwards every transaction it admits to its peers, unless this node alone
  seals blocks (a follower's writes and reads reach the validators this way);
- announces the blocks it seals, and pushes blobs clients store here;
- fetches the blobs a received block names before committing it, and a blob a
  signed read needs if it has not arrived yet;
- seals on its own only under the embedded engine (``solo``) and only as the
  only validator: a follower (or a validator of a larger set) can never
  finalise a block with its own vote; under ``bft`` the driver decides blocks;
- under ``pow``, hands every block it is given (``/add_block``, catch-up) to the
  fork choice (``node.pow_driver``), which commits through ``commit_block``
  only the blocks of the chain with the most work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol

from ehrchain.core import block as blockmod
from ehrchain.core import encoding
from ehrchain.core import tx as txmod
from ehrchain.core.errors import CoreError
from ehrchain.core.types import BlockHash
from ehrchain.node.errors import Rejected, Unavailable
from ehrchain.node.peers import normalise_url
from ehrchain.node.service import NodeService
from ehrchain.node.sync import record_cids
from ehrchain.storage.ledger import ChainHead

__all__ = ["SOLO", "ForkChoice", "Links", "NetworkedService"]

SOLO: Final = "solo"
POW: Final = "pow"
MINE_WAIT_S: Final = 30.0
"""How long ``/mine`` under proof of work waits for the pending transactions to be mined."""


class Links(Protocol):
    """What the service asks of the network layer (``node.p2p.P2P``)."""

    def admitted(self, items: Sequence[bytes]) -> None: ...
    def wake(self) -> None: ...
    def committed(self, block: blockmod.Block, sealed_here: bool) -> None: ...
    def blob_stored(self, data: bytes) -> None: ...
    def ensure_blobs(self, cids: Sequence[str]) -> None: ...
    def peer_added(self, url: str) -> bool: ...
    def peer_urls(self) -> list[str]: ...
    def register_with(self, url: str) -> dict[str, Any]: ...


class ForkChoice(Protocol):
    """What decides which received blocks join the chain (``node.pow_driver.PowDriver``)."""

    def receive_block(self, data: bytes) -> ChainHead: ...
    def mine_now(self, timeout_s: float) -> blockmod.Block | None: ...


class NetworkedService(NodeService):
    """A ``NodeService`` that tells its ``Links`` what happened (see module doc)."""

    links: Links | None = None
    fork_choice: ForkChoice | None = None
    _alone: tuple[BlockHash, bool] | None = None

    def attach(self, links: Links) -> None:
        self.links = links
        for url in links.peer_urls():
            super().register_node(url)

    def follow(self, fork_choice: ForkChoice) -> None:
        """Route received blocks through ``fork_choice`` (proof of work)."""
        self.fork_choice = fork_choice

    def seals_alone(self) -> bool:
        """Cached per head: the validator set changes only with a block."""
        head = self.head().hash
        cached = self._alone
        if cached is None or cached[0] != head:
            cached = (head, super().seals_alone())
            self._alone = cached
        return cached[1]

    # -- transactions ----------------------------------------------------------

    def submit(self, data: bytes) -> bytes:
        tx_id = super().submit(data)
        self._forward([data])
        return tx_id

    def submit_many(
        self, items: Sequence[bytes], *, drop_stale: bool = False
    ) -> list[tuple[bytes | None, Exception | None]]:
        results = super().submit_many(items, drop_stale=drop_stale)
        self._forward([d for d, (tx_id, _) in zip(items, results, strict=True) if tx_id])
        return results

    def submit_from_peer(
        self, items: Sequence[bytes]
    ) -> list[tuple[bytes | None, Exception | None]]:
        """Admit transactions a peer forwarded; not forwarded again (peers are a full mesh).
        The consensus driver is woken at once: the next block may be this node's.

        Refused while catching up: the up-to-date nodes hold them, and most are
        in the blocks being fetched (checking them here would only slow that).
        """
        if self.is_lagging():
            raise Unavailable("this node is catching up; its peers hold these transactions")
        results = super().submit_many(items, drop_stale=True)
        if self.links is not None and any(tx_id for tx_id, _ in results):
            self.links.wake()
        return results

    def readmit(self, txs: Sequence[txmod.Transaction]) -> list[txmod.Transaction]:
        """Displaced transactions back in the pool are offered to the peers too (gossip
        sends each one once, so only those this node alone had go out)."""
        admitted = super().readmit(txs)
        self._forward([t.to_bytes() for t in admitted])
        return admitted

    def read(self, data: bytes) -> dict[str, Any]:
        self._fetch_read_blob(data)
        result = super().read(data)
        self._forward([data])
        return result

    def _forward(self, items: Sequence[bytes]) -> None:
        if self.links is not None and items and not self.seals_alone():
            self.links.admitted(items)

    def _fetch_read_blob(self, data: bytes) -> None:
        """A read of a version whose blob has not replicated here yet fetches it first."""
        if self.links is None:
            return
        try:
            tx = txmod.from_bytes(data)
            record_id, number = str(tx.payload["record_id"]), int(tx.payload["version"])
        except (CoreError, KeyError, TypeError, ValueError):
            return  # the read itself reports what is wrong
        meta = self.version(record_id, number)
        if meta is not None and not self.blobs.has(str(meta["cid"])):
            self.links.ensure_blobs([str(meta["cid"])])

    # -- blobs -------------------------------------------------------------------

    def put_blobs(self, items: Sequence[bytes]) -> list[str]:
        cids = super().put_blobs(items)
        if self.links is not None:
            for data in items:
                self.links.blob_stored(data)
        return cids

    def store_peer_blob(self, data: bytes) -> str:
        """A blob a peer pushed: stored under the CID of its bytes, not pushed again."""
        return super().put_blobs([data])[0]

    # -- blocks ------------------------------------------------------------------

    def seal_if_due(self) -> blockmod.Block | None:
        if self.settings.consensus != SOLO or not self.seals_alone():
            return None
        block = super().seal_if_due()
        if block is not None and self.links is not None:
            self.links.committed(block, True)
        return block

    def mine(self) -> blockmod.Block | None:
        if self.settings.consensus == POW and self.fork_choice is not None:
            if not self.is_validator():
                raise Rejected("not_a_validator", "only validator nodes mine blocks")
            return self.fork_choice.mine_now(MINE_WAIT_S)
        if self.settings.consensus != SOLO:
            raise Rejected(
                "not_authorised",
                f"under {self.settings.consensus} consensus the validators decide blocks; "
                "pending transactions are proposed without /mine",
            )
        if not self.seals_alone():
            raise Rejected(
                "not_a_validator",
                "this node does not seal blocks; it forwards transactions to the validators",
            )
        block = super().mine()
        if block is not None and self.links is not None:
            self.links.committed(block, True)
        return block

    def add_block(self, data: bytes) -> ChainHead:
        """A block a peer pushed (``/add_block``): to the fork choice when there is one.

        Otherwise a block at a height this node has is refused before it is
        decoded (a proposer announces each decided block to every peer, and
        the validators among them have committed it already), and any block
        while catch-up is under way (it fetches them faster, checking
        signatures in the verifier workers).
        """
        if self.fork_choice is not None:
            return self.fork_choice.receive_block(data)
        height = _height_of(data)
        if height is not None and height <= self.head().height:
            raise Rejected("not_next", "this node has a block at that height")
        if self.is_lagging():
            raise Unavailable("this node is catching up; it fetches the blocks itself")
        return self.commit_block(data)

    def commit_block(self, data: bytes) -> ChainHead:
        """Verify and commit a block that extends the head (``NodeService.add_block``),
        fetching the blobs it names first. Its transactions that are pending here
        are not decoded again (a BFT proposer announces each block it decided to
        peers that are committing it themselves)."""
        try:
            block = self.decode_block(data)
        except CoreError as exc:
            raise Rejected("invalid_block", str(exc)) from exc
        return self.commit_decoded(block)

    def add_fetched(
        self, data: bytes, block: blockmod.Block, *, signatures_checked: bool
    ) -> ChainHead:
        """A block catch-up fetched: to the fork choice (as bytes) when there is one."""
        if self.fork_choice is not None:
            return self.fork_choice.receive_block(data)
        return self.commit_decoded(block, signatures_checked=signatures_checked)

    def commit_decoded(
        self, block: blockmod.Block, *, signatures_checked: bool = False
    ) -> ChainHead:
        """``commit_block`` for a decoded block (a BFT decision, a fetched block: no
        second decode)."""
        head = self.head()
        extends = block.header.height == head.height + 1 and block.header.prev_hash == head.hash
        if extends and self.links is not None:
            self.links.ensure_blobs(record_cids(block))
        head = self.add_decoded(block, signatures_checked=signatures_checked)
        if self.links is not None:
            self.links.committed(block, False)
        return head

    # -- peers -------------------------------------------------------------------

    def register_node(self, url: str) -> list[str]:
        try:
            url = normalise_url(url)
        except ValueError as exc:
            raise Rejected("invalid_request", str(exc)) from None
        if self.links is not None and not self.links.peer_added(url):
            return self.peers()  # the node's own URL
        return super().register_node(url)

    def register_with(self, url: str) -> dict[str, Any]:
        if self.links is None:
            return super().register_with(url)
        return self.links.register_with(url)


def _height_of(data: bytes) -> int | None:
    """The height a block's header claims, read without checking anything; None when
    the bytes are not shaped like a block (the full decode then reports why)."""
    try:
        height = encoding.decode_checked(data)[0][5]
    except (CoreError, IndexError, KeyError, TypeError, ValueError):
        return None
    return height if type(height) is int else None
