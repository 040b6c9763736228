"""Run one node: the service, its sealer thread and the HTTP API on uvicorn.

The node's modules are imported inside ``run_node``, not at the top: this is
the ``-m`` main module of a node process, and every verifier worker process
(``node.verifier``, started with ``spawn``) imports the main module again.
With the imports here each worker would load FastAPI, uvicorn and the web UI
(about 0.6 s) before checking its first signature; it needs none of them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Final

GIL_SWITCH_S: Final = 0.02
"""How long a thread holding the GIL runs before another may take it (Python's
default is 5 ms). A node's consensus, gossip, sync and request threads all want
it; four validators on two cores reached finality sooner at half load with 20 ms
(p50 563-564 ms against 653-693 ms, two runs each) at the same throughput, and
lost throughput at 1 ms. Single runs here vary by 15% or more (a later run of
the same code gave 905 ms), so this is a lead, not a settled gain."""


def run_node(data_dir: Path, host: str | None = None, port: int | None = None) -> None:
    """Serve until interrupted; binds loopback unless the config says otherwise."""
    import uvicorn

    from ehrchain.api.app import create_app
    from ehrchain.core.encoding import MAX_ENCODED_SIZE
    from ehrchain.node import gcclock, logs
    from ehrchain.node.p2p_api import mount_network
    from ehrchain.node.settings import load
    from ehrchain.node.wiring import Sealer, open_node
    from ehrchain.web import create_web

    sys.setswitchinterval(GIL_SWITCH_S)
    settings = load(data_dir, host=host, port=port)
    logs.configure(settings.log_level, settings.log_path)
    service, identity = open_node(settings)
    sealer = Sealer(service)
    sealer.start()
    app = create_app(service, max_body_bytes=settings.max_body_bytes)
    app.include_router(create_web(service))
    p2p, net = mount_network(app, service, identity)
    gcclock.tune()
    logging.getLogger("ehrchain.node").info(
        "node started", extra={"chain_id": settings.chain_id, "port": settings.port}
    )
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=2,
            ws="websockets-sansio",  # peers' streams (/p2p/stream)
            ws_max_size=MAX_ENCODED_SIZE,
            ssl_certfile=net.tls_cert or None,
            ssl_keyfile=net.tls_key or None,
        )
    finally:
        p2p.stop()
        sealer.stop()
        service.close()
        service.ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run an ehrchain node")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    run_node(args.data_dir, args.host, args.port)


if __name__ == "__main__":
    main()
