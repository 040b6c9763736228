"""Live notifications: committed transactions become notices for the people they concern.

A notice names who did what to whose file, by display name, address and
record id; it never carries record content. The audience of a change to a
patient's file is the patient, their active delegates, the custodian (their
hospital's admin), providers with an active grant and the actor; of an access
request, grant, revoke or denial also the provider concerned; of a break-glass,
the patient, delegates and custodian. Only the audience that has a web account
on this node is told (nobody else can sign in here to see a notice), and a
transaction that concerns none of them costs no more than finding that out:
most of a busy chain is audit reads by people who never use this node's pages.
The hub fans notices out to each signed-in browser's server-sent event stream
and keeps the last few per address.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from typing import Any, Final

from ehrchain.web.chainindex import ChainIndex, Seen, patient_of

KEEP: Final = 50
MAX_QUEUED: Final = 200


@dataclass(frozen=True, slots=True)
class Notice:
    id: int
    kind: str
    level: str
    text: str
    patient: str
    actor: str
    record_id: str
    height: int
    timestamp_ms: int
    tx_id: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(slots=True)
class Subscription:
    address: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Notice]


class Hub:
    """Thread-safe fan-out of notices to subscribers, by address."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, list[Subscription]] = {}
        self._recent: dict[str, deque[Notice]] = {}

    def subscribe(self, address: str) -> Subscription:
        sub = Subscription(address, asyncio.get_running_loop(), asyncio.Queue())
        with self._lock:
            self._subs.setdefault(address, []).append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.address, [])
            if sub in subs:
                subs.remove(sub)

    def publish(self, notice: Notice, audience: set[str]) -> None:
        with self._lock:
            targets: list[Subscription] = []
            for address in audience:
                self._recent.setdefault(address, deque(maxlen=KEEP)).appendleft(notice)
                targets.extend(self._subs.get(address, []))
        for sub in targets:
            sub.loop.call_soon_threadsafe(_offer, sub.queue, notice)

    def recent(self, address: str) -> list[Notice]:
        with self._lock:
            return list(self._recent.get(address, ()))


def _offer(queue: asyncio.Queue[Notice], notice: Notice) -> None:
    if queue.qsize() < MAX_QUEUED:
        queue.put_nowait(notice)


Names = Callable[[str], str]
"""Address -> a name to show (display name, else a shortened address)."""


class CachedNames:
    """``names`` remembered for ``ttl_s``: a busy chain names the same people in every notice.

    Display names are fixed when a web account is made; the time limit only
    bounds how long a newly made account still shows as a short address.
    """

    def __init__(self, names: Names, ttl_s: float = 10.0, size: int = 4096) -> None:
        self._names = names
        self._ttl_s = ttl_s
        self._size = size
        self._known: dict[str, tuple[str, float]] = {}

    def __call__(self, address: str) -> str:
        now = time.monotonic()
        hit = self._known.get(address)
        if hit is not None and hit[1] > now:
            return hit[0]
        name = self._names(address)
        if len(self._known) >= self._size:
            self._known.clear()
        self._known[address] = (name, now + self._ttl_s)
        return name


class Notifier:
    """Turns each committed transaction into a notice and publishes it to the part
    of its audience that ``accounts`` names (the addresses with a web account here)."""

    def __init__(
        self,
        service: Any,
        index: ChainIndex,
        hub: Hub,
        names: Names,
        accounts: Callable[[], Collection[str]],
    ) -> None:
        self._service = service
        self._index = index
        self._hub = hub
        self._names = CachedNames(names)
        self._accounts = accounts
        self._ids = itertools.count(1)

    def __call__(self, seen: Seen) -> None:
        made = self.describe(seen)
        if made is None:
            return
        level, text, everyone = made
        audience = self._here(everyone)
        if not audience:
            return
        tx = seen.tx
        notice = Notice(
            id=next(self._ids),
            kind=tx.kind,
            level=level,
            text=text,
            patient=patient_of(tx),
            actor=str(tx.sender),
            record_id=str(tx.payload.get("record_id", "")),
            height=seen.height,
            timestamp_ms=seen.timestamp_ms,
            tx_id=tx.tx_id.hex(),
        )
        self._hub.publish(notice, audience)

    def describe(self, seen: Seen) -> tuple[str, str, set[str]] | None:
        """(level, sentence, audience) for the kinds people are told about."""
        tx, p, n = seen.tx, seen.tx.payload, self._names
        actor = str(tx.sender)
        kind = tx.kind
        if kind in ("record.create", "record.amend", "record.read"):
            patient = patient_of(tx) if kind != "record.read" else self._record_patient(tx)
            if not patient:
                return None
            rid = str(p["record_id"])
            if kind == "record.read":
                audience = {patient, *self._index.delegates(patient)}
                if not self._here(audience):
                    return None  # the bulk of the chain: decided before any text is made
                text = f"{n(actor)} opened record {rid} (version {p['version']}) of {n(patient)}"
                return "info", text, audience
            what = "added" if kind == "record.create" else f"updated to version {p['version']}"
            text = f"{n(actor)}: record {rid} {what} in the file of {n(patient)}"
            return "info", text, self._care_team(patient) | {actor}
        if kind == "access.request":
            patient = str(p["patient"])
            text = f"{n(actor)} asks for access to the records of {n(patient)}"
            return "warn", text, {patient, actor, *self._index.delegates(patient)}
        if kind in ("access.grant", "access.revoke"):
            patient, grantee = patient_of(tx), str(p["grantee"])
            verb = "granted" if kind == "access.grant" else "revoked"
            text = f"{n(actor)} {verb} access to the records of {n(patient)} for {n(grantee)}"
            return "info", text, {patient, grantee, actor, *self._index.delegates(patient)}
        if kind == "access.deny":
            patient, provider = patient_of(tx), str(p["provider"])
            text = f"{n(actor)} denied the access request of {n(provider)}"
            return "info", text, {patient, provider, actor}
        if kind == "access.break_glass":
            patient = str(p["patient"])
            text = (
                f"Emergency access: {n(actor)} broke the glass on the records of {n(patient)} "
                f"(reason: {p['reason_code']})"
            )
            audience = {patient, actor, *self._index.delegates(patient)}
            custodian = self._custodian(patient)
            if custodian:
                audience.add(custodian)
            return "alert", text, audience
        if kind in ("delegate.add", "delegate.remove"):
            caregiver = str(p["caregiver"])
            verb = "made" if kind == "delegate.add" else "removed"
            text = f"{n(actor)} {verb} {n(caregiver)} a caregiver with access"
            if kind == "delegate.remove":
                text = f"{n(actor)} removed {n(caregiver)} as caregiver"
            return "info", text, {actor, caregiver}
        if kind in ("consent.authorise", "consent.withdraw"):
            provider = str(p["provider"])
            verb = "may now" if kind == "consent.authorise" else "may no longer"
            text = f"{n(provider)} {verb} add records to the file of {n(actor)}"
            return "info", text, {actor, provider}
        if kind == "keys.rewrap":
            patient, grantee = str(p["patient"]), str(p["grantee"])
            text = f"Emergency keys for the records of {n(patient)} delivered to {n(grantee)}"
            return "alert", text, {patient, grantee, actor}
        if kind == "provider.verify":
            provider = str(p["provider"])
            return "info", f"{n(provider)} was verified by {n(actor)}", {provider, actor}
        return None

    def _here(self, audience: set[str]) -> set[str]:
        """The members of ``audience`` who can sign in to this node's pages."""
        accounts = self._accounts()
        return {address for address in audience if address in accounts}

    def _record_patient(self, tx: Any) -> str:
        record_id = str(tx.payload["record_id"])
        found = self._index.record_patient(record_id)
        if found:
            return found
        record = self._service.record(record_id)
        return str(record["patient"]) if record else ""

    def _custodian(self, patient: str) -> str:
        account = self._service.account(patient) or {}
        hospital = (account.get("patient") or {}).get("hospital", "")
        return self._index.hospitals().get(str(hospital), {}).get("admin", "")

    def _care_team(self, patient: str) -> set[str]:
        team = {patient, *self._index.delegates(patient)}
        custodian = self._custodian(patient)
        if custodian:
            team.add(custodian)
        for grant in self._service.grants(patient):
            if grant.get("status") == "active":
                team.add(str(grant["address"]))
        team.update(self._index.emergency_providers(patient))
        return team
