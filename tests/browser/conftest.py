"""Fixtures of the browser tests (helpers in webtest.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from webtest import CHROMIUM, CHROMIUM_ARGS, ROOT, WebNode, start_web_node

expect.set_options(timeout=30_000)
"""The machine may be busy (two cores shared with other test runs): wait for pages generously."""


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Launch Debian's Chromium, installing it first when it is missing."""
    if not CHROMIUM.exists():
        subprocess.run(["bash", str(ROOT / "scripts" / "ensure_chromium.sh")], check=True)
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": CHROMIUM_ARGS,
        "headless": True,
    }


@pytest.fixture(scope="module")
def web_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebNode]:
    node = start_web_node(tmp_path_factory.mktemp("web-node"))
    try:
        yield node
    finally:
        node.stop()
