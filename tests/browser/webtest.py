"""Helpers of the browser tests: Debian's Chromium driven by Playwright against a real node process.

Playwright's own browser download cannot work on this closed network, so the
tests launch ``/usr/bin/chromium`` (installed by scripts/ensure_chromium.sh when
missing) through ``executable_path``. Each server is ``serve.py`` in a
subprocess: the node service, its sealer, the JSON API and the web router on a
free loopback port, stopped by pid.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, expect

from ehrchain.crypto.keystore import KdfParams
from ehrchain.node.setup import init_node

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SHOTS = ROOT / "test-artifacts" / "screenshots"
NODE_PASSWORD = "node password for the browser tests"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WebNode:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def start_web_node(data_dir: Path, *extra: str) -> WebNode:
    init_node(data_dir, password=NODE_PASSWORD, kdf=KdfParams.FAST_FOR_TESTS)
    port = _free_port()
    log_path = data_dir / "web-test.log"
    env = {**os.environ, "EHRCHAIN_NODE_PASSWORD": NODE_PASSWORD}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("serve.py")),
                str(data_dir),
                str(port),
                *extra,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    node = WebNode(f"http://127.0.0.1:{port}", data_dir, process, log_path)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"web node exited early:\n{node.log_tail()}")
        try:
            if httpx.get(node.url + "/", timeout=2).status_code == 200:
                return node
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            node.stop()
            raise RuntimeError(f"web node did not start:\n{node.log_tail()}")
        time.sleep(0.2)


class User:
    """One person at one browser: their own context (cookies) and page."""

    def __init__(self, browser: Browser, base_url: str, username: str, password: str) -> None:
        self.context: BrowserContext = browser.new_context(
            base_url=base_url, viewport={"width": 1280, "height": 900}
        )
        self.context.set_default_timeout(20_000)
        self.page: Page = self.context.new_page()
        self.username = username
        self.password = password

    def login(self, expect_change: bool = False) -> None:
        page = self.page
        page.goto("/login")
        page.fill("input[name=username]", self.username)
        page.fill("input[name=password]", self.password)
        page.click("form[action='/login'] button[type=submit]")
        if expect_change:
            expect(page.locator("h1")).to_have_text("Choose your password")
            new = self.password + "-mine"
            page.fill("input[name=old_password]", self.password)
            page.fill("input[name=new_password]", new)
            page.fill("input[name=confirm]", new)
            page.click("form[action='/password'] button[type=submit]")
            self.password = new
            expect(page.locator(".flash.ok")).to_contain_text("password is changed")

    def wait_live(self) -> None:
        """Wait until this page's notification stream is connected."""
        expect(self.page.locator("body[data-live-ready='1']")).to_have_count(1)

    def shot(self, name: str, full_page: bool = True) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def close(self) -> None:
        self.context.close()


def flash_ok(page: Page, text: str) -> None:
    expect(page.locator(".flash.ok")).to_contain_text(text)


def flash_error(page: Page, text: str) -> None:
    expect(page.locator(".flash.error")).to_contain_text(text)
