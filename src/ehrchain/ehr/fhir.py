"""FHIR resource validation with ``fhir.resources`` and the record category vocabulary.

A record version's plaintext is the FHIR JSON exactly as the writer gave it, so
validation only inspects it: the JSON is parsed strictly (a single object, no
duplicate keys, no NaN/Infinity, at most ``MAX_FHIR_SIZE`` bytes), the model
class is looked up by ``resourceType`` and the parsed object is validated
against it. R4 and R4B data are validated with the R4B models
(``fhir.resources.R4B``), R5 data with the R5 models (``fhir.resources``).
R4 resources that R4B removed (the ``MedicinalProduct*`` family, for instance)
are therefore rejected as unknown.

A version is named either by its release label ("R4", "R4B", "R5") or by its
version number; ``FhirInfo.fhir_version`` is always the number ("4.0.1",
"4.3.0", "5.0.0" for the labels), the form a record payload carries.

``fhir.resources`` checks structure, cardinality, primitive formats and the
resource type; it does not check terminology bindings (a ``status`` code outside
its value set passes).

Privacy: an ``InvalidFhir`` message names the resource type, the path of the
failing element and the kind of failure, and never any value from the input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

import fhir.resources
import fhir.resources.R4B
import pydantic

from ehrchain.ehr.errors import EhrError

FHIR_RELEASES: Final[Mapping[str, str]] = {"R4": "4.0.1", "R4B": "4.3.0", "R5": "5.0.0"}
"""Release label -> the version number recorded on the chain."""
_MODELS_FOR: Final[Mapping[str, str]] = {
    "R4": "R4B",
    "4.0.0": "R4B",
    "4.0.1": "R4B",
    "R4B": "R4B",
    "4.3.0": "R4B",
    "R5": "R5",
    "5.0.0": "R5",
}
SUPPORTED_FHIR_VERSIONS: Final = tuple(_MODELS_FOR)
MAX_FHIR_SIZE: Final = 8 * 1024 * 1024
FHIR_MEDIA_TYPE: Final = "application/fhir+json"


_RESOURCE_TYPE: Final = re.compile(r"[A-Z][A-Za-z]{1,63}")
_SAFE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_ABSTRACT_TYPES: Final = frozenset(
    {"Resource", "DomainResource", "CanonicalResource", "MetadataResource"}
)
_MAX_REPORTED_ERRORS: Final = 3

_BY_TYPE: Final[Mapping[str, str]] = {
    "AllergyIntolerance": "allergy",
    "Condition": "condition",
    "Procedure": "procedure",
    "ImagingStudy": "imaging",
    "Media": "imaging",
    "Specimen": "laboratory",
    "Medication": "medication",
    "MedicationRequest": "medication",
    "MedicationStatement": "medication",
    "MedicationAdministration": "medication",
    "MedicationDispense": "medication",
    "Immunization": "medication",
    "DocumentReference": "document",
    "Composition": "document",
    "Binary": "document",
}
_OBSERVATION_CODES: Final[Mapping[str, str]] = {
    "vital-signs": "vital-signs",
    "laboratory": "laboratory",
    "imaging": "imaging",
    "procedure": "procedure",
}
_REPORT_CODES: Final[Mapping[str, str]] = {
    "LAB": "laboratory",
    "RAD": "imaging",
    "IMG": "imaging",
}


class InvalidFhir(EhrError):
    """The content is not a valid FHIR resource of the stated version; no input is echoed."""

    code = "invalid_fhir"


@dataclass(frozen=True, slots=True)
class FhirInfo:
    """What a validated resource says about itself; none of it is clinical content."""

    resource_type: str
    fhir_version: str
    """The version number, e.g. "4.0.1", as a record payload carries it."""
    resource_id: str | None
    category: str


def validate_fhir(json_bytes: bytes, fhir_version: str = "R4") -> FhirInfo:
    """Validate one FHIR resource in JSON form; raise InvalidFhir on anything else."""
    if fhir_version not in _MODELS_FOR:
        raise InvalidFhir(f"unsupported FHIR version (supported: {SUPPORTED_FHIR_VERSIONS})")
    document = parse_json_object(json_bytes)
    resource_type = document.get("resourceType")
    if not isinstance(resource_type, str) or not _RESOURCE_TYPE.fullmatch(resource_type):
        raise InvalidFhir("resourceType is missing or malformed")
    model = _model_class(resource_type, fhir_version)
    try:
        resource = model.model_validate(document)
    except pydantic.ValidationError as exc:
        raise InvalidFhir(_describe(resource_type, fhir_version, exc)) from None
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError):
        raise InvalidFhir(f"{resource_type} is not a valid {fhir_version} resource") from None
    resource_id = getattr(resource, "id", None)
    return FhirInfo(
        resource_type=resource_type,
        fhir_version=FHIR_RELEASES.get(fhir_version, fhir_version),
        resource_id=resource_id if isinstance(resource_id, str) else None,
        category=category_for(resource_type, category_codes(document)),
    )


def parse_json_object(json_bytes: bytes) -> dict[str, Any]:
    """Strict JSON: one UTF-8 object, no duplicate keys, no NaN or Infinity."""
    if not isinstance(json_bytes, bytes | bytearray | memoryview):
        raise InvalidFhir("FHIR content must be bytes")
    if len(json_bytes) > MAX_FHIR_SIZE:
        raise InvalidFhir(f"FHIR content exceeds {MAX_FHIR_SIZE} bytes")
    try:
        text = bytes(json_bytes).decode("utf-8")
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise InvalidFhir("FHIR content is not UTF-8") from None
    except _JsonRejectedError as exc:
        raise InvalidFhir(str(exc)) from None
    except (ValueError, RecursionError):
        raise InvalidFhir("FHIR content is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidFhir("FHIR content must be a JSON object")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _JsonRejectedError("FHIR content has a duplicate key")
    return result


def _no_constant(name: str) -> Any:
    raise _JsonRejectedError("FHIR content has NaN or Infinity")


class _JsonRejectedError(ValueError):
    """Raised inside the ``json.loads`` hooks with a message that quotes no input."""


def _packages(fhir_version: str) -> tuple[ModuleType, ModuleType]:
    if _MODELS_FOR[fhir_version] == "R5":
        import fhir.resources.resource as r5_resource

        return fhir.resources, r5_resource
    import fhir.resources.R4B.resource as r4b_resource

    return fhir.resources.R4B, r4b_resource


def _model_class(resource_type: str, fhir_version: str) -> type[pydantic.BaseModel]:
    """The concrete resource model named ``resource_type`` in the version's package."""
    package, resource_module = _packages(fhir_version)
    try:
        model: type[pydantic.BaseModel] = package.get_fhir_model_class(resource_type)
    except ValueError:
        raise InvalidFhir(f"resourceType is not a known {fhir_version} resource") from None
    if resource_type in _ABSTRACT_TYPES or not issubclass(model, resource_module.Resource):
        raise InvalidFhir(f"{resource_type} is not a concrete {fhir_version} resource type")
    return model


def _describe(resource_type: str, fhir_version: str, exc: pydantic.ValidationError) -> str:
    """Name the failing paths and error kinds; pydantic's messages may quote input, so skip them."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    problems = [_problem(e["loc"], e["type"]) for e in errors[:_MAX_REPORTED_ERRORS]]
    more = (
        f" and {len(errors) - _MAX_REPORTED_ERRORS} more"
        if len(errors) > _MAX_REPORTED_ERRORS
        else ""
    )
    return f"invalid {fhir_version} {resource_type}: {'; '.join(problems)}{more}"


def _problem(loc: tuple[int | str, ...], error_type: str) -> str:
    """``path (kind)``; an element name the model does not know is input, so it is hidden."""
    unknown = error_type == "extra_forbidden"
    parts = [_part(part) for part in (loc[:-1] if unknown else loc)]
    if unknown:
        parts.append("<unknown>")
    path = ".".join(parts).replace(".[", "[") or "<resource>"
    kind = error_type if _SAFE_NAME.fullmatch(error_type) else "invalid"
    return f"{path} ({kind})"


def _part(part: int | str) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    return part if _SAFE_NAME.fullmatch(part) else "<key>"


def category_codes(document: Mapping[str, Any]) -> tuple[str, ...]:
    """The codes under ``category[].coding[].code`` (or a single ``category``), if any."""
    categories = document.get("category")
    if isinstance(categories, dict):
        categories = [categories]
    if not isinstance(categories, list):
        return ()
    codes: list[str] = []
    for concept in categories:
        codings = concept.get("coding") if isinstance(concept, dict) else None
        for coding in codings if isinstance(codings, list) else ():
            code = coding.get("code") if isinstance(coding, dict) else None
            if isinstance(code, str):
                codes.append(code)
    return tuple(codes)


def category_for(resource_type: str, codes: Iterable[str] = ()) -> str:
    """Map a resource to the ``CATEGORIES`` vocabulary; anything unrecognised is "general".

    Observations are "laboratory" unless their category codes say vital signs,
    imaging or procedure (or name another kind, such as social history, which
    is "general"); diagnostic reports are "laboratory" unless coded as radiology.
    """
    codes = tuple(codes)
    if resource_type == "Observation":
        for code in codes:
            if code in _OBSERVATION_CODES:
                return _OBSERVATION_CODES[code]
        return "general" if codes else "laboratory"
    if resource_type == "DiagnosticReport":
        for code in codes:
            if code in _REPORT_CODES:
                return _REPORT_CODES[code]
        return "laboratory"
    return _BY_TYPE.get(resource_type, "general")


__all__ = [
    "FHIR_MEDIA_TYPE",
    "FHIR_RELEASES",
    "MAX_FHIR_SIZE",
    "SUPPORTED_FHIR_VERSIONS",
    "FhirInfo",
    "InvalidFhir",
    "category_codes",
    "category_for",
    "parse_json_object",
    "validate_fhir",
]
