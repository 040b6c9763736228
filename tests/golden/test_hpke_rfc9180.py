"""HPKE conformance to the RFC 9180 test vectors, and interoperability of our wrapper.

Why the conformance is shown in three steps: the vectors (from the
``cryptography-vectors`` package) fix the ephemeral key and give every
encryption an AAD ("Count-0", "Count-1", …), while ``cryptography``'s public
single-shot API picks its own ephemeral key and has no AAD parameter (we bind
everything through ``info``). So no vector can be replayed through
``ehrchain.crypto.hpke`` itself. Instead:

1. an independent implementation (pycryptodome's ``Crypto.Protocol.HPKE``) is
   shown to reproduce every base-mode X25519/HKDF-SHA256 vector (all AEADs,
   every listed encryption in sequence, the exports, and the key derivations);
   the library our wrapper calls is checked on the first encryption of each of
   those vectors through its private AAD-taking entry point, when present;
2. our ``wrap`` output opens with pycryptodome and pycryptodome's seal opens
   with our ``unwrap`` (same suite, same ``info``, empty AAD), in both
   directions, so our wrapper speaks the same protocol as a conforming one;
3. our ``unwrap`` with a vector's recipient private key opens a fresh message
   sealed to the vector's recipient public key.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
from Crypto.Protocol import HPKE as PY_HPKE
from Crypto.Protocol.DH import import_x25519_public_key
from Crypto.PublicKey import ECC
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import x25519

from ehrchain.crypto import hpke
from ehrchain.crypto.errors import DecryptionError

BASE_MODE = 0
KEM_X25519_SHA256 = 0x0020
KDF_HKDF_SHA256 = 0x0001
AEAD_AES_256_GCM = 0x0002
AEADS = {
    0x0001: PY_HPKE.AEAD.AES128_GCM,
    0x0002: PY_HPKE.AEAD.AES256_GCM,
    0x0003: PY_HPKE.AEAD.CHACHA20_POLY1305,
}
ENCRYPTIONS_PER_VECTOR = 257


def _load() -> list[dict[str, Any]]:
    path = resources.files("cryptography_vectors").joinpath("HPKE", "test-vectors.json")
    vectors: list[dict[str, Any]] = json.loads(path.read_text())
    return [
        v
        for v in vectors
        if v["mode"] == BASE_MODE
        and v["kem_id"] == KEM_X25519_SHA256
        and v["kdf_id"] == KDF_HKDF_SHA256
        and v["aead_id"] in AEADS
    ]


VECTORS = _load()
OUR_SUITE = [v for v in VECTORS if v["aead_id"] == AEAD_AES_256_GCM]


def _id(vector: dict[str, Any]) -> str:
    return f"aead-{vector['aead_id']:#06x}"


def _h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_vector_selection() -> None:
    assert sorted(v["aead_id"] for v in VECTORS) == [1, 2, 3]
    assert len(OUR_SUITE) == 1


@pytest.mark.parametrize("vector", VECTORS, ids=_id)
def test_key_derivation_matches(vector: dict[str, Any]) -> None:
    for secret, public in (("skRm", "pkRm"), ("skEm", "pkEm")):
        py_key = ECC.construct(curve="Curve25519", seed=_h(vector[secret]))
        assert py_key.public_key().export_key(format="raw") == _h(vector[public])
        assert hpke.EncryptionKey(_h(vector[secret])).public_key == _h(vector[public])
    assert vector["enc"] == vector["pkEm"]


@pytest.mark.parametrize("vector", VECTORS, ids=_id)
def test_independent_implementation_reproduces_vector(vector: dict[str, Any]) -> None:
    receiver = ECC.construct(curve="Curve25519", seed=_h(vector["skRm"]))
    context = PY_HPKE.new(
        receiver_key=receiver,
        aead_id=AEADS[vector["aead_id"]],
        enc=_h(vector["enc"]),
        info=_h(vector["info"]),
    )
    opened = 0
    for encryption in vector["encryptions"]:
        plaintext = context.unseal(_h(encryption["ct"]), _h(encryption["aad"]))
        assert plaintext == _h(encryption["pt"])
        opened += 1
    assert opened == len(vector["encryptions"]) == ENCRYPTIONS_PER_VECTOR
    for export in vector["exports"]:
        derived = context.export(_h(export["exporter_context"]), export["L"])
        assert derived == _h(export["exported_value"])


@pytest.mark.parametrize("vector", OUR_SUITE, ids=_id)
def test_cryptography_opens_first_vector_encryption(vector: dict[str, Any]) -> None:
    from cryptography.hazmat.bindings._rust import openssl as rust_openssl

    decrypt_with_aad = getattr(rust_openssl.hpke, "_decrypt_with_aad", None)
    if decrypt_with_aad is None:
        pytest.skip("this cryptography release has no AAD-taking HPKE entry point")
    first = vector["encryptions"][0]
    private = x25519.X25519PrivateKey.from_private_bytes(_h(vector["skRm"]))
    plaintext = decrypt_with_aad(
        hpke.SUITE,
        _h(vector["enc"]) + _h(first["ct"]),
        private,
        info=_h(vector["info"]),
        aad=_h(first["aad"]),
    )
    assert plaintext == _h(first["pt"])
    with pytest.raises(InvalidTag):
        decrypt_with_aad(
            hpke.SUITE,
            _h(vector["enc"]) + _h(first["ct"]),
            private,
            info=_h(vector["info"]) + b"x",
            aad=_h(first["aad"]),
        )


@pytest.mark.parametrize("vector", OUR_SUITE, ids=_id)
def test_our_wrap_opens_with_independent_implementation(vector: dict[str, Any]) -> None:
    info, secret = _h(vector["info"]), bytes(range(32))
    wrapped = hpke.wrap(_h(vector["pkRm"]), secret, info)
    enc, ciphertext = wrapped[: hpke.ENC_SIZE], wrapped[hpke.ENC_SIZE :]
    receiver = ECC.construct(curve="Curve25519", seed=_h(vector["skRm"]))
    context = PY_HPKE.new(
        receiver_key=receiver, aead_id=PY_HPKE.AEAD.AES256_GCM, enc=enc, info=info
    )
    assert context.unseal(ciphertext, b"") == secret


@pytest.mark.parametrize("vector", OUR_SUITE, ids=_id)
def test_independent_seal_opens_with_our_unwrap(vector: dict[str, Any]) -> None:
    info, secret = _h(vector["info"]), b"data key from another implementation"
    receiver_public = import_x25519_public_key(_h(vector["pkRm"]))
    sender = PY_HPKE.new(receiver_key=receiver_public, aead_id=PY_HPKE.AEAD.AES256_GCM, info=info)
    wrapped = sender.enc + sender.seal(secret, b"")
    key = hpke.EncryptionKey(_h(vector["skRm"]))
    assert hpke.unwrap(key, wrapped, info) == secret
    with pytest.raises(DecryptionError):
        hpke.unwrap(key, wrapped, info + b"!")


@pytest.mark.parametrize("vector", OUR_SUITE, ids=_id)
def test_vector_keys_work_with_our_wrapper(vector: dict[str, Any]) -> None:
    key = hpke.EncryptionKey(_h(vector["skRm"]))
    assert key.public_key == _h(vector["pkRm"])
    info = _h(vector["info"])
    wrapped = hpke.wrap(_h(vector["pkRm"]), _h(vector["encryptions"][0]["pt"]), info)
    assert hpke.unwrap(key, wrapped, info) == _h(vector["encryptions"][0]["pt"])
