"""The web layer's own parts without a browser: sessions, login limits, accounts, FHIR forms.

Clocks are injected, so expiry and lock-out are tested without waiting.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ehrchain.core import tx as txmod
from ehrchain.core.block import Block
from ehrchain.core.types import Address
from ehrchain.crypto.keystore import Identity, KdfParams
from ehrchain.ehr.fhir import validate_fhir
from ehrchain.node.setup import new_identity
from ehrchain.web import accounts as accounts_module
from ehrchain.web.accounts import AccountStore
from ehrchain.web.chainindex import ChainIndex, Seen
from ehrchain.web.errors import AccountExists, BadForm, LoginFailed, RateLimited, describe
from ehrchain.web.fhirview import FORM_TYPES, build_resource, readable
from ehrchain.web.notifications import Hub, Notifier
from ehrchain.web.ratelimit import LoginLimiter
from ehrchain.web.sessions import SessionStore
from ehrchain.web.settings import FAST_PASSWORD_COST


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _session(store: SessionStore) -> str:
    identity = new_identity("p", "patient")
    made = store.create(
        username="p",
        display_name="P",
        role="patient",
        address=identity.address,
        identity=identity,
        must_change=False,
    )
    return made.session_id


def test_session_ends_after_idle_time_and_activity_extends_it() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, max_s=3600, clock=clock)
    sid = _session(store)
    clock.now += 50
    assert store.get(sid) is not None
    clock.now += 50
    assert store.get(sid) is not None, "activity 50 s ago keeps it alive"
    clock.now += 61
    assert store.get(sid) is None
    assert store.get(sid) is None, "an expired session is gone for good"


def test_session_ends_at_its_maximum_age_despite_activity() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, max_s=100, clock=clock)
    sid = _session(store)
    for _ in range(3):
        clock.now += 30
        assert store.get(sid) is not None
    clock.now += 30
    assert store.get(sid) is None


def test_alive_does_not_count_as_activity() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, max_s=3600, clock=clock)
    sid = _session(store)
    clock.now += 40
    assert store.alive(sid)
    clock.now += 40
    assert not store.alive(sid)


def test_limiter_locks_after_failures_and_unlocks_later() -> None:
    clock = Clock()
    limiter = LoginLimiter(max_failures=3, window_s=60, lockout_s=120, clock=clock)
    for _ in range(2):
        limiter.check("user:a")
        limiter.failed("user:a")
    limiter.check("user:a")
    limiter.failed("user:a")
    with pytest.raises(RateLimited):
        limiter.check("user:a")
    limiter.check("user:b")
    clock.now += 121
    limiter.check("user:a")


def test_limiter_forgets_failures_outside_the_window() -> None:
    clock = Clock()
    limiter = LoginLimiter(max_failures=3, window_s=60, lockout_s=120, clock=clock)
    limiter.failed("k")
    limiter.failed("k")
    clock.now += 61
    limiter.failed("k")
    limiter.check("k")


def test_accounts_check_passwords_and_keep_keys_sealed(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "a.sqlite", FAST_PASSWORD_COST, KdfParams.FAST_FOR_TESTS)
    identity = new_identity("Pat", "patient")
    store.create("pat", "first password", identity, display_name="Pat", now_ms=1)
    account, opened = store.authenticate("PAT", "first password")
    assert account.address == identity.address
    assert opened.signing.seed == identity.signing.seed
    with pytest.raises(LoginFailed):
        store.authenticate("pat", "wrong password")
    with pytest.raises(LoginFailed):
        store.authenticate("nobody", "first password")
    with pytest.raises(AccountExists):
        store.create("pat", "other password", new_identity("x"), display_name="X", now_ms=2)
    store.change_password("pat", "first password", "second password")
    with pytest.raises(LoginFailed):
        store.authenticate("pat", "first password")
    assert store.authenticate("pat", "second password")[1].address == identity.address
    raw = (tmp_path / "a.sqlite").read_bytes()
    assert identity.signing.seed.hex().encode() not in raw
    assert b"second password" not in raw


@pytest.mark.parametrize("rtype", FORM_TYPES)
def test_form_resources_are_valid_fhir(rtype: str) -> None:
    form = {
        "code_text": "Haemoglobin",
        "code": "718-7",
        "value": "13.2",
        "unit": "g/dL",
        "date": "2025-03-14",
        "dosage": "1 tablet daily",
        "reaction": "hives",
        "criticality": "high",
        "note": "checked twice",
    }
    body = build_resource(rtype, form, {"reference": "Patient/P123", "display": "Pat"})
    info = validate_fhir(body, "R4")
    assert info.resource_type == rtype
    shown = readable(json.loads(body))
    assert shown.rows


def test_form_refuses_missing_and_malformed_fields() -> None:
    with pytest.raises(BadForm) as missing:
        build_resource("Observation", {"value": "1"}, {"display": "P"})
    assert missing.value.field == "code_text"
    with pytest.raises(BadForm) as bad:
        build_resource("Observation", {"code_text": "x", "value": "high"}, {"display": "P"})
    assert bad.value.field == "value"


def test_messages_never_echo_unknown_errors() -> None:
    assert "secret" not in describe(ValueError("secret clinical text"))


def test_account_addresses_show_new_accounts_at_once_and_other_writers_soon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.sqlite"
    store = AccountStore(path, FAST_PASSWORD_COST, KdfParams.FAST_FOR_TESTS)
    assert store.addresses() == frozenset()
    pat = new_identity("Pat", "patient")
    store.create("pat", "a long password", pat, display_name="Pat", now_ms=1)
    assert store.addresses() == {pat.address}
    other = AccountStore(path, FAST_PASSWORD_COST, KdfParams.FAST_FOR_TESTS)  # another process
    sam = new_identity("Sam", "patient")
    other.create("sam", "a long password", sam, display_name="Sam", now_ms=2)
    assert store.addresses() == {pat.address}  # its copy is still fresh
    monkeypatch.setattr(accounts_module.time, "monotonic", lambda: 1e12)  # the copy ages out
    assert store.addresses() == {pat.address, sam.address}
    store.delete("pat")
    assert store.addresses() == {sam.address}


def _seen(kind: str, sender: Identity, payload: dict[str, object], height: int = 7) -> Seen:
    tx = txmod.build(kind, "web-units", Address(sender.address), 0, payload, sender.signing)
    return Seen(tx, height, 1_000)


class _Index(ChainIndex):
    def __init__(self) -> None:
        class Head:
            height = 0

        class Source:
            def head(self) -> Head:
                return Head()

            def blocks(self, start: int, limit: int) -> list[Block]:
                return []

        super().__init__(Source())


def test_notices_go_only_to_the_audience_with_an_account_here() -> None:
    pat, kim, doc = (new_identity(n, "patient") for n in ("Pat", "Kim", "Doc"))
    index, hub = _Index(), Hub()
    index.ix.record_patient["rec-pat"] = pat.address
    index.ix.record_patient["rec-kim"] = kim.address
    named: list[str] = []

    def names(address: str) -> str:
        named.append(address)
        return address[:12]

    here = {pat.address, doc.address}
    notify = Notifier(None, index, hub, names, lambda: here)
    notify(_seen("record.read", doc, {"record_id": "rec-pat", "version": 1}))
    assert [n.text for n in hub.recent(pat.address)] == [
        f"{doc.address[:12]} opened record rec-pat (version 1) of {pat.address[:12]}"
    ]
    assert hub.recent(doc.address) == []  # a reader is not told of their own read

    named.clear()
    notify(_seen("record.read", doc, {"record_id": "rec-kim", "version": 1}))
    assert hub.recent(kim.address) == []  # Kim cannot sign in here
    assert named == []  # and no notice text was even made for nobody

    notify(_seen("access.grant", kim, {"grantee": doc.address}))
    assert [n.kind for n in hub.recent(doc.address)] == ["access.grant"]
    assert hub.recent(kim.address) == []
