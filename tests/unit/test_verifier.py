"""The verifier pool: its verdicts, and it outlives the thread that started it, not the process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

from ehrchain.core import tx as txmod
from ehrchain.core.address import address_from_public_key
from ehrchain.crypto.signing import SigningKey
from ehrchain.node.verifier import VerifierPool, check_signatures, signed

KEY = SigningKey(bytes(range(32)))


def _signed(count: int) -> list[txmod.Transaction]:
    sender = address_from_public_key(KEY.public_key)
    payload = {"record_id": "r", "version": 1}
    return [txmod.build("record.read", "c", sender, n, payload, KEY) for n in range(count)]


def test_verdicts_name_what_is_wrong_with_each_signature_in_order() -> None:
    good, forged, short, bad_key = _signed(4)
    flipped = bytes([forged.signature[0] ^ 1]) + forged.signature[1:]
    items = [
        signed(good),
        (forged.public_key, forged.signing_bytes(), flipped),
        (short.public_key, short.signing_bytes(), short.signature[:63]),
        (bytes(32), bad_key.signing_bytes(), bad_key.signature),
        (good.public_key, good.signing_bytes() + b"x", good.signature),
    ]
    assert check_signatures(items) == [
        None,
        "signature does not verify",
        "signature must be 64 bytes",
        "public key is not a valid prime-order curve point",
        "signature does not verify",
    ]
    pool = VerifierPool()
    try:  # the workers give the same verdicts, in order, across their chunks
        assert pool.signatures([good, forged, short]) == [None, None, None]
    finally:
        pool.close()


def test_a_pool_started_on_a_thread_that_ends_keeps_working() -> None:
    # The node starts its pool on a request thread, which the server retires when idle.
    made: list[VerifierPool] = []

    def start() -> None:
        pool = VerifierPool()
        pool.warm_up()
        made.append(pool)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    (pool,) = made
    try:
        time.sleep(0.3)
        verdicts = pool.signatures(_signed(4))
    finally:
        pool.close()
    assert verdicts == [None] * 4


def test_workers_exit_when_their_process_is_killed() -> None:
    script = textwrap.dedent(
        """
        import os
        from ehrchain.node.verifier import VerifierPool
        pool = VerifierPool()
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
