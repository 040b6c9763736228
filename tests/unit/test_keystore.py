"""Keystore: identities only at rest encrypted, header authenticated, file private."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from ehrchain.crypto.errors import KeystoreError
from ehrchain.crypto.hpke import EncryptionKey
from ehrchain.crypto.keystore import (
    FORMAT,
    Identity,
    KdfParams,
    decrypt_identity,
    encrypt_identity,
    load_identity,
    save_identity,
)
from ehrchain.crypto.signing import SigningKey

PASSWORD = "correct horse battery staple"
FAST = KdfParams.FAST_FOR_TESTS
# Any string stands for the address here: crypto does not depend on core.
ADDRESS = "ehr1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v"


@pytest.fixture(scope="module")
def identity() -> Identity:
    return Identity(
        label="Dr Ada",
        address=ADDRESS,
        signing=SigningKey(
            bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        ),
        encryption=EncryptionKey.generate(),
        previous_encryption=(EncryptionKey.generate(), EncryptionKey.generate()),
        role="provider",
    )


def _secrets(identity: Identity) -> list[bytes]:
    keys = [identity.signing.seed] + [k.raw for k in identity.all_encryption_keys()]
    out: list[bytes] = []
    for raw in keys:
        out += [raw, raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw)]
    return out


def _same(a: Identity, b: Identity) -> bool:
    return (
        a.label == b.label
        and a.address == b.address
        and a.role == b.role
        and a.signing.seed == b.signing.seed
        and [k.raw for k in a.all_encryption_keys()] == [k.raw for k in b.all_encryption_keys()]
    )


def test_round_trip(identity: Identity) -> None:
    data = encrypt_identity(identity, PASSWORD, FAST)
    assert _same(decrypt_identity(data, PASSWORD), identity)


def test_file_format_is_versioned_json(identity: Identity) -> None:
    document = json.loads(encrypt_identity(identity, PASSWORD, FAST))
    assert document["format"] == FORMAT
    assert document["kdf"]["algorithm"] == "argon2id"
    assert document["kdf"]["time_cost"] == FAST.time_cost
    assert document["kdf"]["memory_cost_kib"] == FAST.memory_cost_kib
    assert len(base64.b64decode(document["kdf"]["salt"])) == 16


def test_no_key_material_in_clear(identity: Identity) -> None:
    data = encrypt_identity(identity, PASSWORD, FAST)
    for secret in _secrets(identity):
        assert secret not in data
    assert PASSWORD.encode() not in data


def test_wrong_password(identity: Identity) -> None:
    data = encrypt_identity(identity, PASSWORD, FAST)
    with pytest.raises(KeystoreError) as info:
        decrypt_identity(data, PASSWORD + "!")
    assert PASSWORD not in str(info.value)


def test_empty_password_refused(identity: Identity) -> None:
    with pytest.raises(KeystoreError):
        encrypt_identity(identity, "", FAST)


def test_unicode_password_is_normalised(identity: Identity) -> None:
    composed, decomposed = "caf\u00e9-pass", "cafe\u0301-pass"
    data = encrypt_identity(identity, composed, FAST)
    assert _same(decrypt_identity(data, decomposed), identity)


@pytest.mark.parametrize(
    ("field", "value"),
    [("label", "Mallory"), ("address", "ehr1other"), ("role", "consortium_admin")],
)
def test_header_is_authenticated(identity: Identity, field: str, value: str) -> None:
    document = json.loads(encrypt_identity(identity, PASSWORD, FAST))
    document[field] = value
    with pytest.raises(KeystoreError):
        decrypt_identity(json.dumps(document).encode(), PASSWORD)


def test_kdf_params_are_authenticated(identity: Identity) -> None:
    document = json.loads(encrypt_identity(identity, PASSWORD, KdfParams(1, 16, 1)))
    document["kdf"]["memory_cost_kib"] = 8
    with pytest.raises(KeystoreError):
        decrypt_identity(json.dumps(document).encode(), PASSWORD)


def test_tampered_ciphertext(identity: Identity) -> None:
    document = json.loads(encrypt_identity(identity, PASSWORD, FAST))
    sealed = bytearray(base64.b64decode(document["sealed"]))
    sealed[20] ^= 1
    document["sealed"] = base64.b64encode(bytes(sealed)).decode()
    with pytest.raises(KeystoreError):
        decrypt_identity(json.dumps(document).encode(), PASSWORD)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"format": "ehrchain-keystore/v0"}',
        b'{"format": "ehrchain-keystore/v1"}',
    ],
)
def test_corrupt_files(data: bytes) -> None:
    with pytest.raises(KeystoreError):
        decrypt_identity(data, PASSWORD)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("memory_cost_kib", 2**40),
        ("time_cost", 0),
        ("time_cost", True),
        ("parallelism", "1"),
        ("salt", "!!"),
        ("algorithm", "argon2i"),
    ],
)
def test_hostile_kdf_params_refused(identity: Identity, name: str, value: object) -> None:
    document = json.loads(encrypt_identity(identity, PASSWORD, FAST))
    document["kdf"][name] = value
    with pytest.raises(KeystoreError):
        decrypt_identity(json.dumps(document).encode(), PASSWORD)


def test_save_and_load(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "ada.json"
    save_identity(path, identity, PASSWORD, FAST)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _same(load_identity(path, PASSWORD), identity)
    assert [p.name for p in tmp_path.iterdir()] == ["ada.json"]
    data = path.read_bytes()
    for secret in _secrets(identity):
        assert secret not in data


def test_save_replaces_atomically(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "ada.json"
    save_identity(path, identity, PASSWORD, FAST)
    save_identity(path, identity, "new password", FAST)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _same(load_identity(path, "new password"), identity)
    assert [p.name for p in tmp_path.iterdir()] == ["ada.json"]


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError):
        load_identity(tmp_path / "missing.json", PASSWORD)


def test_save_into_missing_directory(tmp_path: Path, identity: Identity) -> None:
    with pytest.raises(KeystoreError):
        save_identity(tmp_path / "nope" / "ada.json", identity, PASSWORD, FAST)


def test_rotation_keeps_old_encryption_keys(identity: Identity) -> None:
    new_signing, new_encryption = SigningKey.generate(), EncryptionKey.generate()
    rotated = identity.rotated(new_signing, new_encryption)
    assert rotated.address == identity.address
    assert rotated.signing is new_signing
    assert rotated.all_encryption_keys() == (new_encryption, *identity.all_encryption_keys())


def test_repr_hides_secrets(identity: Identity) -> None:
    text = repr(identity)
    assert identity.label in text
    for secret in _secrets(identity):
        assert secret.decode("latin-1") not in text


def test_kdf_params_validated() -> None:
    with pytest.raises(KeystoreError):
        KdfParams(time_cost=0, memory_cost_kib=64, parallelism=1)
    with pytest.raises(KeystoreError):
        KdfParams(time_cost=1, memory_cost_kib=4, parallelism=1)
    assert KdfParams(3, 64 * 1024, 1) == KdfParams.DEFAULT


def test_default_params_round_trip(identity: Identity) -> None:
    data = encrypt_identity(identity, PASSWORD)
    assert json.loads(data)["kdf"]["memory_cost_kib"] == 64 * 1024
    assert _same(decrypt_identity(data, PASSWORD), identity)
