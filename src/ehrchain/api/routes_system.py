"""Liveness and Prometheus metrics.

Metrics are counters the node already keeps (transactions accepted and
rejected, blocks, reads), gauges read at scrape time (height, pending), the
cycle collector's passes and CPU time by generation, and HTTP requests by
method, route template and status. Labels hold only route
templates and status codes, so no id or query can leak through them.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter
from starlette.responses import Response

from ehrchain.api.middleware import HttpCounts
from ehrchain.api.schemas import json_response
from ehrchain.node import gcclock
from ehrchain.node.errors import NodeError
from ehrchain.node.service import NodeService

__all__ = ["PROMETHEUS_CONTENT_TYPE", "render_metrics", "system_router"]

PROMETHEUS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_COUNTERS: Final = (
    ("tx_accepted", "ehrchain_txs_accepted_total", "Transactions admitted to the pending pool"),
    ("tx_rejected", "ehrchain_txs_rejected_total", "Transactions refused"),
    ("blocks", "ehrchain_blocks_sealed_total", "Blocks sealed by this node"),
    ("reads", "ehrchain_record_reads_total", "Signed record reads served"),
)


def system_router(service: NodeService, http: HttpCounts) -> APIRouter:
    router = APIRouter(tags=["system"])

    @router.get("/healthz", summary="Liveness: the node can read its head")
    def healthz() -> Response:
        try:
            height = service.head().height
        except NodeError:
            return json_response({"status": "unavailable"}, 503)
        return json_response({"status": "ok", "height": height})

    @router.get("/metrics", summary="Prometheus text exposition")
    def metrics() -> Response:
        return Response(render_metrics(service, http), media_type=PROMETHEUS_CONTENT_TYPE)

    return router


def render_metrics(service: NodeService, http: HttpCounts) -> str:
    """Prometheus text format 0.0.4."""
    lines: list[str] = []
    counters = dict(service.counters)
    for key, name, help_text in _COUNTERS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        lines.append(f"{name} {counters.get(key, 0)}")
    status = service.status()
    for name, help_text, value in (
        ("ehrchain_chain_height", "Height of the last committed block", status["height"]),
        ("ehrchain_pending_txs", "Transactions waiting in the pending pool", status["pending"]),
        ("ehrchain_peers", "Known peer nodes", len(status["peers"])),
    ):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
    for name, help_text, values in (
        ("ehrchain_gc_collections_total", "Cycle-collector passes", gcclock.collections()),
        (
            "ehrchain_gc_cpu_seconds_total",
            "CPU time in cycle-collector passes",
            gcclock.cpu_seconds(),
        ),
    ):
        lines += [f"# HELP {name} {help_text}, by generation", f"# TYPE {name} counter"]
        lines += [f'{name}{{generation="{g}"}} {v}' for g, v in enumerate(values)]
    name = "ehrchain_http_requests_total"
    lines += [f"# HELP {name} HTTP requests served", f"# TYPE {name} counter"]
    for (method, route, code), count in sorted(http.counts.items()):
        labels = f'method="{_label(method)}",route="{_label(route)}",status="{code}"'
        lines.append(f"{name}{{{labels}}} {count}")
    return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
