"""Every official HL7 example validates, seals and opens byte-for-byte for each reader.

The zips come from the pinned fhirstarter wheel (see ``ehrchain.ehr.examples``):
one example per resource type, 140 for R4B and 158 for R5. Nothing is skipped
silently: an example that fails must be listed in ``KNOWN_INVALID`` with why.
"""

from __future__ import annotations

import importlib.util
import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from ehrchain.crypto.hpke import EncryptionKey
from ehrchain.ehr import examples
from ehrchain.ehr.examples import (
    DEMO_RESOURCE_TYPES,
    SOURCES,
    ExamplesError,
    check_examples_zip,
    demo_examples,
    examples_zip_path,
    iter_examples,
)
from ehrchain.ehr.fhir import FHIR_MEDIA_TYPE, InvalidFhir, validate_fhir
from ehrchain.ehr.records import open_version, prepare_fhir, seal_version

REPO = Path(__file__).resolve().parents[2]
EXPECTED_COUNTS = {"R4B": 140, "R5": 158}
KNOWN_INVALID: dict[str, dict[str, str]] = {"R4B": {}, "R5": {}}
"""name -> reason, per release; empty because every HL7 example validates."""

CHAIN = "ehrchain-golden"
PATIENT = "ehr1patient"
PROVIDER = "ehr1provider"


def _fetch_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fetch_fhir_examples", REPO / "scripts" / "fetch_fhir_examples.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", autouse=True)
def hl7_examples() -> None:
    """Fetch the pinned zips (through the setup script) if they are not cached yet."""
    if not all(examples_zip_path(version).exists() for version in SOURCES):
        _fetch_module().fetch()


@pytest.fixture(scope="module")
def reader_keys() -> dict[str, EncryptionKey]:
    return {PATIENT: EncryptionKey.generate(), PROVIDER: EncryptionKey.generate()}


@pytest.mark.parametrize("fhir_version", sorted(EXPECTED_COUNTS))
def test_every_example_round_trips(
    fhir_version: str,
    reader_keys: dict[str, EncryptionKey],
    record_property: Callable[[str, object], None],
) -> None:
    readers = {address: key.public_key for address, key in reader_keys.items()}
    failures: dict[str, str] = {}
    round_tripped = 0
    validation_seconds = 0.0
    for index, (name, data) in enumerate(iter_examples(fhir_version=fhir_version)):
        started = time.perf_counter()
        try:
            content, info = prepare_fhir(data, fhir_version)
        except InvalidFhir as exc:
            failures[name] = str(exc)
            continue
        finally:
            validation_seconds += time.perf_counter() - started
        assert name.startswith(info.resource_type + "/")
        record_id = f"r{index:032x}"
        sealed = seal_version(
            chain_id=CHAIN,
            record_id=record_id,
            version=1,
            content=content,
            kind="fhir",
            media_type=FHIR_MEDIA_TYPE,
            fhir_version=info.fhir_version,
            resource_type=info.resource_type,
            category=info.category,
            readers=readers,
        )
        for address, key in reader_keys.items():
            plaintext = open_version(
                chain_id=CHAIN,
                record_id=record_id,
                version=1,
                blob=sealed.blob,
                cid=sealed.cid,
                commitment=sealed.commitment,
                wrapped_key=sealed.wrapped[address],
                reader_address=address,
                keys=[key],
            )
            assert plaintext == data, name
            assert json.loads(plaintext) == json.loads(data), name
        round_tripped += 1
    print(
        f"HL7 {fhir_version}: {round_tripped} examples round-tripped, "
        f"validation took {validation_seconds:.2f} s"
    )
    record_property(f"{fhir_version}_validation_seconds", round(validation_seconds, 2))
    assert failures == KNOWN_INVALID[fhir_version]
    assert round_tripped + len(failures) == EXPECTED_COUNTS[fhir_version]


@pytest.mark.parametrize("fhir_version", sorted(EXPECTED_COUNTS))
def test_one_example_per_resource_type(fhir_version: str) -> None:
    names = [name for name, _ in iter_examples(fhir_version=fhir_version)]
    assert len(names) == EXPECTED_COUNTS[fhir_version] == SOURCES[fhir_version].count
    assert len(set(names)) == len(names)
    with zipfile.ZipFile(examples_zip_path(fhir_version)) as archive:
        assert len(archive.namelist()) == EXPECTED_COUNTS[fhir_version]


def test_filter_and_limit() -> None:
    assert [name for name, _ in iter_examples(kind="Observation")] == ["Observation/example"]
    assert [name for name, _ in iter_examples(kind="DiagnosticReport")] == ["Bundle/101"]
    assert list(iter_examples(kind="NoSuchType")) == []
    assert len(list(iter_examples(limit=5))) == 5
    assert list(iter_examples(limit=0)) == []


def test_demo_set() -> None:
    demo = demo_examples()
    assert [name.split("/")[0] for name, _ in demo] == list(DEMO_RESOURCE_TYPES)
    categories = set()
    for name, data in demo:
        info = validate_fhir(data, "R4")
        assert info.resource_type != "Patient"
        assert name == f"{info.resource_type}/{info.resource_id}"
        categories.add(info.category)
    assert {"vital-signs", "condition", "allergy", "medication", "laboratory"} <= categories


def test_zip_must_be_the_pinned_file() -> None:
    data = examples_zip_path().read_bytes()
    check_examples_zip(data)
    with pytest.raises(ExamplesError):
        check_examples_zip(data + b"\x00")
    with pytest.raises(ExamplesError):
        check_examples_zip(data, "R5")
    with pytest.raises(ExamplesError):
        check_examples_zip(data, "STU3")


def test_cache_location_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(examples.ENV_VAR, raising=False)
    assert examples_zip_path() == REPO / ".cache" / "fhir-examples" / "examples.zip"
    target = tmp_path / "hl7" / "r4b.zip"
    monkeypatch.setenv(examples.ENV_VAR, str(target))
    assert examples_zip_path() == target
    assert examples_zip_path("R5") == tmp_path / "hl7" / "examples-R5.zip"
    with pytest.raises(ExamplesError, match="fetch_fhir_examples"):
        next(iter_examples())


def test_fetch_is_idempotent_and_repairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real fetch into an empty cache; a second rewrites nothing; a corrupt zip is replaced."""
    fetch = _fetch_module()
    target = tmp_path / "cache" / "examples.zip"
    monkeypatch.setenv(examples.ENV_VAR, str(target))
    paths = fetch.fetch()
    assert paths == (target, target.with_name("examples-R5.zip"))
    for version, path in zip(SOURCES, paths, strict=True):
        check_examples_zip(path.read_bytes(), version)
    stamps = [path.stat().st_mtime_ns for path in paths]
    assert fetch.fetch() == paths
    assert [path.stat().st_mtime_ns for path in paths] == stamps
    target.write_bytes(b"corrupt")
    fetch.fetch()
    check_examples_zip(target.read_bytes())
