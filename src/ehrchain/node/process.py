"""Start and stop node processes on loopback (bench, tests, local networks)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from ehrchain.node.settings import PASSWORD_ENV

LOWEST_PORT: Final = 20_000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (see ``free_ports``)."""
    return free_ports(1)


def free_ports(count: int) -> int:
    """A base port such that ``count`` consecutive loopback ports were free a moment ago.

    Chosen below the kernel's ephemeral range, so that a node restarted on its
    port does not find it taken as the source port of some outgoing connection
    (with many short connections, a port from the ephemeral range often is).
    """
    high = _ephemeral_low() - count
    for _ in range(200):
        base = LOWEST_PORT + secrets.randbelow(max(1, high - LOWEST_PORT))
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no {count} consecutive free ports")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


@dataclass
class NodeProcess:
    """A node running as its own OS process; stopped by its own pid."""

    data_dir: Path
    port: int
    password: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    scheme: str = "http"
    """``https`` for a node configured with a TLS certificate."""
    verify: bool | str = True
    """CA bundle (or False) for the readiness check of an ``https`` node."""

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_s: float = 90.0) -> None:
        env = {**os.environ, PASSWORD_ENV: self.password}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ehrchain.node.server",
                    "--data-dir",
                    str(self.data_dir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"node exited early:\n{self.log_tail()}")
            try:
                answer = httpx.get(f"{self.url}/healthz", timeout=1, verify=self._verify())
                if answer.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"node did not become ready:\n{self.log_tail()}")

    def _verify(self) -> bool | ssl.SSLContext:
        if isinstance(self.verify, str):
            return ssl.create_default_context(cafile=self.verify)
        return self.verify

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        """Signal the process by its pid and reap it; SIGKILL if it does not exit."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, sig)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
