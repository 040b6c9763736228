"""A node stores blobs within its own size limit; a batch with one too large stores none."""

from __future__ import annotations

from pathlib import Path

import pytest

from ehrchain.crypto.keystore import KdfParams
from ehrchain.node import settings as settings_mod
from ehrchain.node.errors import PayloadTooLarge
from ehrchain.node.setup import init_node
from ehrchain.node.wiring import open_service


def test_a_batch_with_an_oversized_blob_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(settings_mod.PASSWORD_ENV, "pw")
    init_node(tmp_path, password="pw", kdf=KdfParams.FAST_FOR_TESTS)
    service = open_service(settings_mod.load(tmp_path, max_blob_bytes=100))
    try:
        with pytest.raises(PayloadTooLarge):
            service.put_blobs([b"small", bytes(101)])
        with pytest.raises(PayloadTooLarge):
            service.put_blob(bytes(101))
        assert list(service.blobs.iter_cids()) == []
        cid = service.put_blob(bytes(100))
        assert service.blobs.get(cid) == bytes(100)
    finally:
        service.close()
        service.ledger.close()
