"""Run a real node with the web UI for the browser tests (a test helper, not shipped).

Usage: python serve.py DATA_DIR PORT [--idle-s N]

It opens the node service from an initialised data directory, starts the
sealer, includes the web router beside the JSON API, and serves on loopback.
Web accounts for the consortium admin ("admin") and the validator
("validator") are created from the node's keystores on first start, with the
node password, as the demo does.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn

from ehrchain.api.app import create_app
from ehrchain.crypto.keystore import KdfParams, load_identity
from ehrchain.node.settings import KEY_DIR, load
from ehrchain.node.setup import ADMIN_KEY_FILE
from ehrchain.node.wiring import Sealer, open_service
from ehrchain.web import FAST_PASSWORD_COST, WebSettings, create_web
from ehrchain.web.setup import add_web_account


def bootstrap(settings: WebSettings, node_key: Path, admin_key: Path, password: str) -> None:
    for username, path, name in (
        ("admin", admin_key, "Consortium Admin"),
        ("validator", node_key, "Validator Node 0"),
    ):
        add_web_account(settings, username, password, load_identity(path, password), name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("port", type=int)
    parser.add_argument("--idle-s", type=int, default=15 * 60)
    args = parser.parse_args()
    password = os.environ["EHRCHAIN_NODE_PASSWORD"]
    node = load(args.data_dir, port=args.port, host="127.0.0.1")
    web_settings = WebSettings(
        data_dir=args.data_dir,
        session_idle_s=args.idle_s,
        password_cost=FAST_PASSWORD_COST,
        keystore_kdf=KdfParams.FAST_FOR_TESTS,
    )
    bootstrap(web_settings, node.node_key_path, args.data_dir / KEY_DIR / ADMIN_KEY_FILE, password)
    service = open_service(node)
    sealer = Sealer(service)
    sealer.start()
    app = create_app(service)
    app.include_router(create_web(service, web_settings))
    try:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    finally:
        sealer.stop()


if __name__ == "__main__":
    main()
