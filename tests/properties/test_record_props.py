"""Properties of record encryption: only wrapped-for readers open, and every binding holds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehrchain.crypto.hpke import EncryptionKey
from ehrchain.ehr.records import NotAReader, SealedVersion, open_version, seal_version

PROPERTY_SETTINGS = settings(max_examples=100, deadline=None)

# Any 32 bytes are a valid X25519 private key (the scalar is clamped), so keys can
# be drawn; distinct raw bytes give distinct public keys except with negligible odds.
keys = st.binary(min_size=32, max_size=32).map(EncryptionKey)
addresses = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12).map(
    lambda s: "ehr1" + s
)
record_ids = st.text(alphabet="0123456789abcdef", min_size=1, max_size=32).map(lambda s: "r" + s)
versions = st.integers(min_value=1, max_value=2**31)
chains = st.sampled_from(["ehrchain-main", "ehrchain-test"])


def seal(
    chain_id: str, record_id: str, version: int, content: bytes, readers: dict[str, EncryptionKey]
) -> SealedVersion:
    return seal_version(
        chain_id=chain_id,
        record_id=record_id,
        version=version,
        content=content,
        kind="document",
        media_type="application/pdf",
        fhir_version="",
        resource_type="",
        category="document",
        readers={address: key.public_key for address, key in readers.items()},
    )


def open_as(
    sealed: SealedVersion,
    binding: tuple[str, str, int, str],
    wrapped_key: bytes,
    key: EncryptionKey,
) -> bytes:
    """Open ``sealed`` presenting ``wrapped_key`` as (chain, record, version, reader)."""
    chain_id, record_id, version, reader = binding
    return open_version(
        chain_id=chain_id,
        record_id=record_id,
        version=version,
        blob=sealed.blob,
        cid=sealed.cid,
        commitment=sealed.commitment,
        wrapped_key=wrapped_key,
        reader_address=reader,
        keys=[key],
    )


@PROPERTY_SETTINGS
@given(
    chain_id=chains,
    record_id=record_ids,
    version=versions,
    content=st.binary(max_size=2048),
    readers=st.dictionaries(addresses, keys, min_size=1, max_size=4),
    outsiders=st.lists(keys, min_size=1, max_size=3),
)
def test_only_wrapped_for_readers_open(
    chain_id: str,
    record_id: str,
    version: int,
    content: bytes,
    readers: dict[str, EncryptionKey],
    outsiders: list[EncryptionKey],
) -> None:
    sealed = seal(chain_id, record_id, version, content, readers)
    assert set(sealed.wrapped) == set(readers)
    reader_keys = {key.raw for key in readers.values()}
    for address, key in readers.items():
        wrapped_key = sealed.wrapped[address]
        binding = (chain_id, record_id, version, address)
        assert open_as(sealed, binding, wrapped_key, key) == content
        for other in outsiders:
            if other.raw in reader_keys:
                continue
            with pytest.raises(NotAReader):
                open_as(sealed, binding, wrapped_key, other)


@PROPERTY_SETTINGS
@given(
    chain_id=chains,
    record_id=record_ids,
    other_record_id=record_ids,
    version=versions,
    other_version=versions,
    reader=addresses,
    other_reader=addresses,
    key=keys,
    content=st.binary(max_size=256),
)
def test_wrapped_key_is_bound_to_record_version_and_reader(
    chain_id: str,
    record_id: str,
    other_record_id: str,
    version: int,
    other_version: int,
    reader: str,
    other_reader: str,
    key: EncryptionKey,
    content: bytes,
) -> None:
    sealed = seal(chain_id, record_id, version, content, {reader: key})
    wrapped_key = sealed.wrapped[reader]
    presented_as = [
        (chain_id, other_record_id, version, reader),
        (chain_id, record_id, other_version, reader),
        (chain_id, record_id, version, other_reader),
        ("ehrchain-other", record_id, version, reader),
    ]
    for claimed in presented_as:
        if claimed == (chain_id, record_id, version, reader):
            continue
        with pytest.raises(NotAReader):
            # The right private key, but presented under the wrong binding.
            open_as(sealed, claimed, wrapped_key, key)
