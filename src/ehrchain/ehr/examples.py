"""HL7's official FHIR example resources, read from the zips the fhirstarter wheel ships.

The fhirstarter wheel (pinned below) carries one ``examples.zip`` per FHIR
release, built from ``hl7.org/fhir/<release>/<type>-examples.html``: one JSON
file per resource type holding an OpenAPI ``examples`` map whose first entry
inlines HL7's example resource under ``value`` (the other entries only link to
hl7.org). So a zip holds one official example per resource type:

- R4B (FHIR 4.3.0): 140 resource types. This is the default: it is the release
  whose models the chain validates "R4" and "R4B" content with.
- R5 (FHIR 5.0.0): 158 resource types (AdverseEvent is nested one level deeper
  in that zip; it is unwrapped here).

The STU3 zip in the same wheel is not used: STU3 is not a supported version.
Only the zips are taken from the wheel, never the package itself (it pins an old
FastAPI); ``scripts/fetch_fhir_examples.py`` does that and both the wheel and
the zips are pinned by SHA-256, checked again on every read. The examples are
public synthetic data, fine for tests and the demo.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ehrchain.ehr.errors import EhrError

FHIRSTARTER_VERSION: Final = "4.2.0"
FHIRSTARTER_WHEEL: Final = f"fhirstarter-{FHIRSTARTER_VERSION}-py3-none-any.whl"
FHIRSTARTER_WHEEL_SHA256: Final = "88ec84316c3b61262ad779e299fc0720ca9848d1ec188734934083b390aa13f0"
ENV_VAR: Final = "EHRCHAIN_FHIR_EXAMPLES"
DEFAULT_FHIR_VERSION: Final = "R4B"

DEMO_RESOURCE_TYPES: Final = (
    "Observation",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "DiagnosticReport",
    "Immunization",
    "Procedure",
)
"""Clinical resources for the demo; none is a Patient, the chain holds the identity."""


@dataclass(frozen=True, slots=True)
class ExampleSource:
    """Where one release's examples zip sits in the wheel and in the cache, and its digest."""

    fhir_version: str
    wheel_member: str
    file_name: str
    sha256: str
    count: int


SOURCES: Final = {
    "R4B": ExampleSource(
        fhir_version="R4B",
        wheel_member="fhirstarter/fhir_specification/sequences/R4B/examples.zip",
        file_name="examples.zip",
        sha256="f5425b71fdcce69a609a3fd6ac06b9d0bd17b976bac8452c4616fff06aeef75d",
        count=140,
    ),
    "R5": ExampleSource(
        fhir_version="R5",
        wheel_member="fhirstarter/fhir_specification/sequences/R5/examples.zip",
        file_name="examples-R5.zip",
        sha256="158d1913edfb8bc40f8264bf0a5748aee7777a29a6d6122ae3fdf2305b358100",
        count=158,
    ),
}


class ExamplesError(EhrError):
    """The examples zip is missing or is not the pinned file."""

    code = "examples_unavailable"


def _source(fhir_version: str) -> ExampleSource:
    try:
        return SOURCES[fhir_version]
    except KeyError:
        raise ExamplesError(f"no HL7 examples for FHIR {fhir_version}") from None


def examples_zip_path(fhir_version: str = DEFAULT_FHIR_VERSION) -> Path:
    """Where the release's zip is cached.

    The R4B zip is ``$EHRCHAIN_FHIR_EXAMPLES`` if set, else
    ``<repo>/.cache/fhir-examples/examples.zip``; the R5 zip sits beside it.
    """
    source = _source(fhir_version)
    override = os.environ.get(ENV_VAR)
    default = Path(__file__).resolve().parents[3] / ".cache" / "fhir-examples" / "examples.zip"
    primary = Path(override) if override else default
    return primary if fhir_version == DEFAULT_FHIR_VERSION else primary.with_name(source.file_name)


def check_examples_zip(data: bytes, fhir_version: str = DEFAULT_FHIR_VERSION) -> None:
    """Raise ExamplesError unless ``data`` is the pinned zip of that release."""
    if hashlib.sha256(data).hexdigest() != _source(fhir_version).sha256:
        raise ExamplesError(f"the {fhir_version} examples zip is not the pinned file")


def _read_zip(fhir_version: str) -> bytes:
    path = examples_zip_path(fhir_version)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ExamplesError(f"{path} is missing: run scripts/fetch_fhir_examples.py") from None
    check_examples_zip(data, fhir_version)
    return data


def iter_examples(
    kind: str | None = None,
    limit: int | None = None,
    fhir_version: str = DEFAULT_FHIR_VERSION,
) -> Iterator[tuple[str, bytes]]:
    """Yield ``("<resourceType>/<id>", JSON bytes)`` per example, optionally for one type.

    ``kind`` is the resource type an example documents, such as "Observation".
    HL7 shows a few types inside a Bundle (DiagnosticReport, DocumentReference
    and SubscriptionStatus in R4B), so the example yielded for a kind may be a
    Bundle. The bytes are the example re-serialised from the zip (its numbers
    were already Python floats there, so nothing more is lost).
    """
    if limit is not None and limit <= 0:
        return
    count = 0
    with zipfile.ZipFile(io.BytesIO(_read_zip(fhir_version))) as archive:
        for member in sorted(archive.namelist()):
            if kind is not None and member != f"{kind.lower()}.json":
                continue
            for resource in _inline_resources(json.loads(archive.read(member))):
                name = f"{resource.get('resourceType')}/{resource.get('id', member)}"
                yield name, json.dumps(resource, indent=2, ensure_ascii=False).encode("utf-8")
                count += 1
                if limit is not None and count >= limit:
                    return


def _inline_resources(examples: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The resources inlined under ``value`` (entries with only ``externalValue`` are links)."""
    for entry in examples.values():
        value = entry.get("value") if isinstance(entry, dict) else None
        while isinstance(value, dict) and "resourceType" not in value:
            value = value.get("value")
        if isinstance(value, dict):
            yield value


def demo_examples() -> tuple[tuple[str, bytes], ...]:
    """One R4B resource of each of ``DEMO_RESOURCE_TYPES``, in that order.

    Where HL7's example is a Bundle, its first entry of the wanted type is used.
    """
    picked = []
    for resource_type in DEMO_RESOURCE_TYPES:
        for _, data in iter_examples(kind=resource_type):
            resource = _first_of_type(json.loads(data), resource_type)
            if resource is not None:
                name = f"{resource_type}/{resource.get('id')}"
                picked.append(
                    (name, json.dumps(resource, indent=2, ensure_ascii=False).encode("utf-8"))
                )
                break
    return tuple(picked)


def _first_of_type(resource: dict[str, Any], resource_type: str) -> dict[str, Any] | None:
    if resource.get("resourceType") == resource_type:
        return resource
    for entry in resource.get("entry", ()) if resource.get("resourceType") == "Bundle" else ():
        inner = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(inner, dict) and inner.get("resourceType") == resource_type:
            return inner
    return None


__all__ = [
    "DEMO_RESOURCE_TYPES",
    "ENV_VAR",
    "FHIRSTARTER_VERSION",
    "SOURCES",
    "ExampleSource",
    "ExamplesError",
    "check_examples_zip",
    "demo_examples",
    "examples_zip_path",
    "iter_examples",
]
