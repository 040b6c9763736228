"""Sign-in, sessions, anti-forgery and the page-side proof check, in a real browser.

The expiring server runs with a 2-second idle timeout; waiting past it is how a
user's session ends, and the test asserts only what the page then shows.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Route, expect
from webtest import NODE_PASSWORD, ROOT, User, WebNode, start_web_node

from ehrchain.core import encoding
from ehrchain.core import tx as txmod
from ehrchain.core.types import Address
from ehrchain.crypto.keystore import load_identity
from ehrchain.node.settings import KEY_DIR
from ehrchain.node.setup import ADMIN_KEY_FILE, new_identity

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def expiring_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebNode]:
    node = start_web_node(tmp_path_factory.mktemp("expiring"), "--idle-s", "2")
    try:
        yield node
    finally:
        node.stop()


def test_form_without_or_with_wrong_token_is_refused(browser: Browser, web_node: WebNode) -> None:
    admin = User(browser, web_node.url, "admin", NODE_PASSWORD)
    try:
        admin.login()
        form: dict[str, str | float | bool] = {
            "hospital_id": "forged",
            "name": "Forged Hospital",
            "display_name": "Mallory",
            "username": "mallory",
            "password": "mallory-pass-1",
        }
        request = admin.context.request
        missing = request.post(web_node.url + "/consortium/hospitals", form=form)
        assert missing.status == 403
        assert "did not come from this site" in missing.text()
        wrong = request.post(
            web_node.url + "/consortium/hospitals", form={**form, "csrf_token": "x" * 43}
        )
        assert wrong.status == 403
        admin.page.goto("/consortium")
        token = admin.page.locator("form[data-test=admit] input[name=csrf_token]").input_value()
        foreign = request.post(
            web_node.url + "/consortium/hospitals",
            form={**form, "csrf_token": token},
            headers={"Origin": "http://evil.example"},
        )
        assert foreign.status == 403
        admin.page.reload()
        expect(admin.page.locator("table[data-test=hospitals]")).not_to_contain_text("Forged")
    finally:
        admin.close()


def test_login_form_needs_its_token(web_node: WebNode) -> None:
    response = httpx.post(
        web_node.url + "/login", data={"username": "admin", "password": NODE_PASSWORD}
    )
    assert response.status_code == 403
    assert (
        "set-cookie" not in response.headers or "ehr_session" not in response.headers["set-cookie"]
    )


def test_session_expires_after_idle_time(browser: Browser, expiring_node: WebNode) -> None:
    admin = User(browser, expiring_node.url, "admin", NODE_PASSWORD)
    try:
        admin.login()
        expect(admin.page).to_have_url(re.compile(r"/consortium$"))
        time.sleep(3)
        admin.page.goto("/consortium")
        expect(admin.page).to_have_url(re.compile(r"/login\?next=/consortium$"))
        expect(admin.page.locator("h1")).to_have_text("Sign in")
        admin.shot("login")
    finally:
        admin.close()


def test_logout_drops_the_session(browser: Browser, web_node: WebNode) -> None:
    admin = User(browser, web_node.url, "admin", NODE_PASSWORD)
    try:
        admin.login()
        cookie = next(c for c in admin.context.cookies() if c["name"] == "ehr_session")
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        admin.page.click("header form[action='/logout'] button")
        expect(admin.page.locator(".flash.ok")).to_contain_text("You are signed out")
        admin.context.add_cookies(
            [
                {
                    "name": cookie["name"],
                    "value": cookie["value"],
                    "url": web_node.url,
                    "httpOnly": True,
                    "sameSite": "Strict",
                }
            ]
        )
        admin.page.goto("/consortium")
        expect(admin.page).to_have_url(re.compile(r"/login"))
    finally:
        admin.close()


def test_failed_logins_are_rate_limited(browser: Browser, expiring_node: WebNode) -> None:
    user = User(browser, expiring_node.url, "validator", "not the password")
    try:
        for _ in range(5):
            user.login()
            expect(user.page.locator(".flash.error")).to_contain_text("wrong username or password")
        user.password = NODE_PASSWORD
        user.login()
        expect(user.page.locator(".flash.error")).to_contain_text("too many failed sign-ins")
        expect(user.page.locator("h1")).to_have_text("Sign in")
    finally:
        user.close()


def _admin_submit_batch(node: WebNode, count: int) -> list[str]:
    """Submit ``count`` admissions at once, so they share a block (a tree of several leaves)."""
    admin = load_identity(node.data_dir / KEY_DIR / ADMIN_KEY_FILE, NODE_PASSWORD)
    nonce = httpx.get(f"{node.url}/v1/accounts/{admin.address}/nonce").json()
    nonce = int(nonce["next_nonce"] if isinstance(nonce, dict) else nonce)
    ids = []
    batch: list[bytes] = []
    for i in range(count):
        head = new_identity(f"batch-{i}", "hospital_admin")
        payload = {
            "hospital_id": f"batch-{i}",
            "name": f"Batch Hospital {i}",
            "admin": {
                "address": head.address,
                "signing_key": head.signing.public_key,
                "encryption_key": head.encryption.public_key,
            },
        }
        tx = txmod.build(
            "hospital.admit",
            "ehrchain-local",
            Address(admin.address),
            nonce + i,
            payload,
            admin.signing,
        )
        batch.append(tx.to_bytes())
        ids.append(tx.tx_id.hex())
    # One batch request is admitted under one lock, so the sealer puts it in one block.
    response = httpx.post(
        f"{node.url}/v1/transactions/batch",
        content=encoding.encode(batch),
        headers={"content-type": "application/cbor"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == count, response.text
    for tx_id in ids:
        for _ in range(100):
            if httpx.get(f"{node.url}/v1/txs/{tx_id}").status_code == 200:
                break
            time.sleep(0.1)
    return ids


def test_verify_page_checks_proofs_and_catches_tampering(
    browser: Browser, web_node: WebNode
) -> None:
    ids = _admin_submit_batch(web_node, 5)
    visitor = User(browser, web_node.url, "", "")
    try:
        for tx_id in ids:
            visitor.page.goto(f"/explorer/verify/{tx_id}")
            expect(visitor.page.locator("[data-test=verdict]")).to_have_attribute(
                "data-result", "pass"
            )
        proof = json.loads(visitor.page.locator("#proof-data").text_content() or "{}")
        assert proof["proof"]["tree_size"] >= 2, "the batch should share a block"

        def tamper(route: Route) -> None:
            page = route.fetch().text()
            data = json.loads(re.search(r'id="proof-data">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
            digest = bytearray.fromhex(data["proof"]["hashes"][0])
            digest[0] ^= 1
            data["proof"]["hashes"][0] = digest.hex()
            body = re.sub(
                r'(id="proof-data">).*?(</script>)',
                lambda m: m.group(1) + json.dumps(data) + m.group(2),
                page,
                flags=re.S,
            )
            route.fulfill(body=body, content_type="text/html")

        visitor.page.route(f"**/explorer/verify/{ids[0]}", tamper)
        visitor.page.goto(f"/explorer/verify/{ids[0]}")
        expect(visitor.page.locator("[data-test=verdict]")).to_have_attribute("data-result", "fail")
        expect(visitor.page.locator("[data-test=checks] li.fail").first).to_be_visible()
    finally:
        visitor.close()


def test_served_htmx_is_the_vendored_release(web_node: WebNode) -> None:
    notes = (ROOT / "src" / "ehrchain" / "web" / "static" / "VENDORED.md").read_text()
    recorded = re.search(r"`htmx.min.js`.*?`([0-9a-f]{64})`", notes)
    assert recorded is not None
    served = httpx.get(web_node.url + "/static/htmx.min.js")
    assert served.status_code == 200
    assert hashlib.sha256(served.content).hexdigest() == recorded.group(1)


def test_pages_fit_a_phone(browser: Browser, web_node: WebNode) -> None:
    context = browser.new_context(base_url=web_node.url, viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        for path in ("/", "/login", "/explorer", "/explorer/blocks/0"):
            page.goto(path)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
        page.goto("/explorer")
        Path(ROOT / "test-artifacts" / "screenshots").mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ROOT / "test-artifacts" / "screenshots" / "phone-explorer.png"))
    finally:
        context.close()


def test_no_health_data_in_urls_or_log(web_node: WebNode) -> None:
    """The journey's clinical values never appear in the node's log."""
    log = web_node.log_tail() + (web_node.data_dir / "web-test.log").read_text(errors="replace")
    for value in ("Haemoglobin", "13.2", "Unconscious in the emergency room", "%PDF"):
        assert value not in log
