"""A seeded, deterministic discrete-event network for testing consensus handlers.

Everything random comes from one injected ``random.Random`` and time is a
virtual millisecond clock: no threads, no sockets, no wall clock, so a seed
replays the same run exactly. Faults act on node ids: messages may be dropped,
duplicated, delayed, reordered or cut by a partition, and a crashed node loses
what arrives while it is down and every timer it had armed. From
``Faults.quiet_ms`` on, the network is stable: nothing is lost, and delays are
bounded (partial synchrony's global stabilisation time).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Partition:
    """From ``start_ms`` to ``end_ms`` nodes talk only within a group; a node may be in several."""

    start_ms: int
    end_ms: int
    groups: tuple[frozenset[int], ...]

    def cuts(self, a: int, b: int, now_ms: int) -> bool:
        if not self.start_ms <= now_ms < self.end_ms:
            return False
        return not any(a in group and b in group for group in self.groups)


@dataclass(frozen=True, slots=True)
class Crash:
    """Node ``node`` is down from ``start_ms`` to ``end_ms``, then restarts with its state."""

    node: int
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class Faults:
    """What the network does wrong before ``quiet_ms``; probabilities are per message."""

    drop: float = 0.0
    duplicate: float = 0.0
    delay_ms: tuple[int, int] = (1, 20)
    reorder: float = 0.0
    """Chance that a message is held back up to ten times the longest delay."""
    partitions: tuple[Partition, ...] = ()
    crashes: tuple[Crash, ...] = ()
    stable_after_ms: int = 0
    """From here on no drops, duplicates or reordering (partitions and crashes end too)."""

    @property
    def quiet_ms(self) -> int:
        """When every fault has stopped."""
        ends = [p.end_ms for p in self.partitions] + [c.end_ms for c in self.crashes]
        return max([self.stable_after_ms, *ends])


def random_faults(rng: random.Random, nodes: int, horizon_ms: int) -> Faults:
    """A random fault schedule over the first ``horizon_ms``: lossy links, a partition
    that heals and a crash that recovers, each with some probability."""
    partitions: tuple[Partition, ...] = ()
    crashes: tuple[Crash, ...] = ()
    if rng.random() < 0.5:
        start = rng.randrange(0, horizon_ms // 2)
        members = list(range(nodes))
        rng.shuffle(members)
        cut = rng.randrange(1, nodes)
        groups = (frozenset(members[:cut]), frozenset(members[cut:]))
        partitions = (Partition(start, rng.randrange(start + 1, horizon_ms), groups),)
    if rng.random() < 0.5:
        start = rng.randrange(0, horizon_ms // 2)
        crashes = (Crash(rng.randrange(nodes), start, rng.randrange(start + 1, horizon_ms)),)
    return Faults(
        drop=rng.choice((0.0, 0.05, 0.2, 0.4)),
        duplicate=rng.choice((0.0, 0.1, 0.3)),
        delay_ms=(1, rng.choice((5, 20, 60))),
        reorder=rng.choice((0.0, 0.1, 0.3)),
        partitions=partitions,
        crashes=crashes,
        stable_after_ms=horizon_ms,
    )


@dataclass(frozen=True, slots=True)
class Delivery(Generic[T]):
    sender: int
    message: T


@dataclass(frozen=True, slots=True)
class Timer(Generic[T]):
    event: T
    armed_ms: int


@dataclass(frozen=True, slots=True)
class Restart:
    """The node came back up after a crash."""


@dataclass(slots=True)
class NetStats:
    sent: int = 0
    dropped: int = 0
    duplicated: int = 0
    delivered: int = 0


@dataclass(slots=True)
class Network(Generic[T]):
    """The event queue. Endpoints are what handlers run on; ``node_of`` maps an endpoint
    to the node id that faults act on (a split-brain Byzantine node has two endpoints)."""

    rng: random.Random
    faults: Faults
    node_of: tuple[int, ...]
    now_ms: int = 0
    stats: NetStats = field(default_factory=NetStats)
    _queue: list[tuple[int, int, int, Delivery[T] | Timer[T] | Restart]] = field(
        default_factory=list
    )
    _seq: int = 0

    def __post_init__(self) -> None:
        for crash in self.faults.crashes:
            for endpoint, node in enumerate(self.node_of):
                if node == crash.node:
                    self._push(crash.end_ms, endpoint, Restart())

    def _push(self, at_ms: int, endpoint: int, item: Delivery[T] | Timer[T] | Restart) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at_ms, self._seq, endpoint, item))

    def down(self, node: int, at_ms: int) -> bool:
        return any(c.node == node and c.start_ms <= at_ms < c.end_ms for c in self.faults.crashes)

    def transmit(self, src: int, dst: int, message: T) -> None:
        """Send between endpoints through the faulty links."""
        faults, rng, now = self.faults, self.rng, self.now_ms
        self.stats.sent += 1
        a, b = self.node_of[src], self.node_of[dst]
        lossy = now < faults.stable_after_ms
        if any(p.cuts(a, b, now) for p in faults.partitions) or (
            lossy and rng.random() < faults.drop
        ):
            self.stats.dropped += 1
            return
        copies = 2 if lossy and rng.random() < faults.duplicate else 1
        self.stats.duplicated += copies - 1
        low, high = faults.delay_ms
        for _ in range(copies):
            delay = rng.randint(low, high)
            if lossy and rng.random() < faults.reorder:
                delay += rng.randint(high, 10 * high)
            self._push(now + delay, dst, Delivery(src, message))

    def arm(self, endpoint: int, event: T, delay_ms: int) -> None:
        self._push(self.now_ms + delay_ms, endpoint, Timer(event, self.now_ms))

    def next(self, until_ms: int) -> tuple[int, Delivery[T] | Timer[T] | Restart] | None:
        """The next event a live endpoint should handle, advancing the clock."""
        while self._queue and self._queue[0][0] <= until_ms:
            at_ms, _, endpoint, item = heapq.heappop(self._queue)
            self.now_ms = at_ms
            node = self.node_of[endpoint]
            if self.down(node, at_ms):
                continue
            if isinstance(item, Timer) and self._crashed_between(node, item.armed_ms, at_ms):
                continue
            if isinstance(item, Delivery):
                self.stats.delivered += 1
            return endpoint, item
        self.now_ms = until_ms
        return None

    def _crashed_between(self, node: int, armed_ms: int, fired_ms: int) -> bool:
        """A timer dies with the process that armed it."""
        return any(
            c.node == node and armed_ms < c.start_ms <= fired_ms for c in self.faults.crashes
        )
