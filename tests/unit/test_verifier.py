"""The verifier pool outlives the thread that started it, and not the process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

from ehrchain.node.verifier import VerifierPool


def test_a_pool_started_on_a_thread_that_ends_keeps_working() -> None:
    # The node starts its pool on a request thread, which the server retires when idle.
    made: list[VerifierPool] = []

    def start() -> None:
        pool = VerifierPool("ehrchain-test")
        pool.warm_up()
        made.append(pool)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    (pool,) = made
    try:
        time.sleep(0.3)
        verdicts = pool.check([b"not a transaction"] * 4)
    finally:
        pool.close()
    assert [v is not None and v[0] for v in verdicts] == ["InvalidTransaction"] * 4


def test_workers_exit_when_their_process_is_killed() -> None:
    script = textwrap.dedent(
        """
        import os
        from ehrchain.node.verifier import VerifierPool
        pool = VerifierPool("ehrchain-test")
        pool.warm_up()
        print(" ".join(str(p) for p in pool._pool._processes), flush=True)
        os.kill(os.getpid(), 9)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    workers = [int(p) for p in done.stdout.split()]
    assert len(workers) == 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False
