"""Server-side sessions: the signed-in user's opened identity lives here and nowhere else.

The browser holds only a random session id in an HttpOnly, SameSite=Strict
cookie. A session ends at logout, after ``idle_s`` without a request, or
``max_s`` after sign-in, whichever comes first; ending it drops the identity
(the private keys) and anything decrypted for the user. Time comes from an
injected clock, so expiry is tested without waiting.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from ehrchain.crypto.keystore import Identity

COOKIE: Final = "ehr_session"
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Opened:
    """Plaintext of one record version the user opened (kept briefly, for inline display)."""

    record_id: str
    version: int
    media_type: str
    content: bytes = field(repr=False)
    expires_at: float


@dataclass(slots=True)
class Session:
    """A signed-in user. ``identity`` holds private keys: never log or render it."""

    session_id: str
    username: str
    display_name: str
    role: str
    address: str
    identity: Identity = field(repr=False)
    csrf_token: str
    created_at: float
    last_seen: float
    must_change: bool = False
    opened: dict[str, Opened] = field(default_factory=dict, repr=False)
    flash: list[tuple[str, str]] = field(default_factory=list)

    def keep_opened(self, opened: Opened) -> str:
        """Keep a decrypted version for this session; return the key to fetch it by."""
        key = secrets.token_urlsafe(16)
        self.opened = {
            k: v for k, v in self.opened.items() if v.expires_at > opened.expires_at - 600
        }
        if len(self.opened) >= 8:
            oldest = min(self.opened, key=lambda k: self.opened[k].expires_at)
            del self.opened[oldest]
        self.opened[key] = opened
        return key

    def add_flash(self, kind: str, message: str) -> None:
        self.flash.append((kind, message))

    def take_flash(self) -> list[tuple[str, str]]:
        messages, self.flash = self.flash, []
        return messages


class SessionStore:
    """Live sessions by id; thread-safe."""

    def __init__(self, idle_s: int, max_s: int, clock: Clock = time.monotonic) -> None:
        self._idle_s = idle_s
        self._max_s = max_s
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(
        self,
        *,
        username: str,
        display_name: str,
        role: str,
        address: str,
        identity: Identity,
        must_change: bool,
    ) -> Session:
        now = self._clock()
        session = Session(
            session_id=secrets.token_urlsafe(32),
            username=username,
            display_name=display_name,
            role=role,
            address=address,
            identity=identity,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen=now,
            must_change=must_change,
        )
        with self._lock:
            self._sweep(now)
            self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session for this id, touched; None if unknown or expired (then dropped)."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[session_id]
                return None
            session.last_seen = now
            session.opened = {k: v for k, v in session.opened.items() if v.expires_at > now}
            return session

    def alive(self, session_id: str) -> bool:
        """Whether the session is live, without counting this as activity."""
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            return session is not None and not self._expired(session, now)

    def drop(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)

    def of_address(self, address: str) -> list[Session]:
        now = self._clock()
        with self._lock:
            return [
                s
                for s in self._sessions.values()
                if s.address == address and not self._expired(s, now)
            ]

    def now(self) -> float:
        return self._clock()

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self._idle_s or now - session.created_at > self._max_s

    def _sweep(self, now: float) -> None:
        for sid in [sid for sid, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[sid]
