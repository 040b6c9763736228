"""FHIR validation: valid resources pass, invalid ones raise InvalidFhir without echoing input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ehrchain.ehr.fhir import (
    FHIR_RELEASES,
    MAX_FHIR_SIZE,
    SUPPORTED_FHIR_VERSIONS,
    FhirInfo,
    InvalidFhir,
    category_codes,
    category_for,
    validate_fhir,
)
from ehrchain.ehr.values import CATEGORIES

SECRET = "Zebediah-Quuxworth-7731"
SECRET_NUMBER = 987654321


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def observation(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "obs-1",
        "status": "final",
        "code": {"text": "Body weight"},
        **extra,
    }


@pytest.mark.parametrize("version", SUPPORTED_FHIR_VERSIONS)
def test_valid_observation_in_every_version(version: str) -> None:
    info = validate_fhir(dumps(observation()), version)
    number = FHIR_RELEASES.get(version, version)
    assert info == FhirInfo("Observation", number, "obs-1", "laboratory")
    assert number[0].isdigit()


def test_release_labels_map_to_version_numbers() -> None:
    assert validate_fhir(dumps(observation())).fhir_version == "4.0.1"
    assert validate_fhir(dumps(observation()), "R4B").fhir_version == "4.3.0"
    assert validate_fhir(dumps(observation()), "R5").fhir_version == "5.0.0"
    assert validate_fhir(dumps(observation()), "4.0.0").fhir_version == "4.0.0"


def test_resource_without_id() -> None:
    info = validate_fhir(dumps({"resourceType": "Patient", "gender": "female"}))
    assert info.resource_type == "Patient"
    assert info.resource_id is None


def test_r4b_and_r5_models_differ() -> None:
    # R5 replaced AllergyIntolerance.asserter by participant; R4B has no participant
    # (the unknown element's name is not echoed: it is input).
    r5_only = {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": "Patient/p1"},
        "participant": [{"actor": {"reference": "Practitioner/x"}}],
    }
    assert validate_fhir(dumps(r5_only), "R5").resource_type == "AllergyIntolerance"
    for r4 in ("R4", "4.0.1", "R4B", "4.3.0"):
        with pytest.raises(InvalidFhir, match=r"AllergyIntolerance: <unknown> \(extra_forbidden\)"):
            validate_fhir(dumps(r5_only), r4)


def test_validate_fhir_never_changes_whitespace_semantics() -> None:
    # Formatting and key order are irrelevant to validation.
    pretty = json.dumps(observation(), indent=4, sort_keys=True).encode()
    assert validate_fhir(pretty).resource_id == "obs-1"


def _invalid_cases() -> list[tuple[str, bytes, str]]:
    """(case, input, text the message must contain); every input carries SECRET values."""
    name = [{"family": SECRET, "given": [SECRET]}]
    return [
        (
            "wrong type",
            dumps({"resourceType": "Patient", "name": [{"family": SECRET_NUMBER}]}),
            "name[0].family",
        ),
        (
            "list expected",
            dumps({"resourceType": "Patient", "name": SECRET}),
            "Patient: name (list_type)",
        ),
        ("unknown resourceType", dumps({"resourceType": "Zebediah", "name": name}), "resource"),
        ("malformed resourceType", dumps({"resourceType": SECRET}), "resourceType"),
        ("no resourceType", dumps({"name": name}), "resourceType"),
        (
            "missing required element",
            dumps({"resourceType": "Observation", "status": "final", "note": [{"text": SECRET}]}),
            "Observation: code (missing)",
        ),
        (
            "bad primitive",
            dumps({"resourceType": "Patient", "birthDate": SECRET, "name": name}),
            "birthDate",
        ),
        (
            "bad decimal",
            dumps(observation(valueQuantity={"value": SECRET})),
            "valueQuantity.value",
        ),
        (
            "unknown element named like data",
            dumps(observation(**{SECRET: SECRET})),
            "<unknown> (extra_forbidden)",
        ),
        (
            "nested resource",
            dumps(
                {
                    "resourceType": "Bundle",
                    "type": "collection",
                    "entry": [{"resource": {"resourceType": "Observation", "id": SECRET}}],
                }
            ),
            "Bundle: entry[0].resource",
        ),
        ("abstract type", dumps({"resourceType": "DomainResource", "id": "x"}), "concrete"),
        ("data type", dumps({"resourceType": "HumanName", "family": SECRET}), "concrete"),
        ("not JSON", f'{{"resourceType": "Patient", "id": "{SECRET}"'.encode(), "not valid JSON"),
        ("array at top level", dumps([observation(id=SECRET)]), "JSON object"),
        ("string at top level", dumps(SECRET), "JSON object"),
        ("not UTF-8", SECRET.encode("utf-16"), "UTF-8"),
        (
            "duplicate key",
            f'{{"resourceType": "Patient", "id": "a", "id": "{SECRET}"}}'.encode(),
            "duplicate key",
        ),
        ("NaN", b'{"resourceType": "Observation", "valueDecimal": NaN}', "NaN"),
    ]


@pytest.mark.parametrize(("case", "data", "expected"), _invalid_cases())
def test_invalid_fhir_names_the_problem_not_the_value(
    case: str, data: bytes, expected: str
) -> None:
    with pytest.raises(InvalidFhir) as caught:
        validate_fhir(data)
    message = str(caught.value)
    assert expected in message, case
    assert SECRET not in message
    assert "Zebediah" not in message
    assert str(SECRET_NUMBER) not in message
    assert caught.value.code == "invalid_fhir"


def test_error_message_lists_at_most_three_paths() -> None:
    data = dumps({"resourceType": "Patient", "a1": 1, "a2": 2, "a3": 3, "a4": 4, "a5": 5})
    with pytest.raises(InvalidFhir, match=r"and 2 more$"):
        validate_fhir(data)


def test_too_large_is_rejected_before_parsing() -> None:
    padding = "x" * MAX_FHIR_SIZE
    data = dumps(observation(note=[{"text": padding}]))
    assert len(data) > MAX_FHIR_SIZE
    with pytest.raises(InvalidFhir, match="exceeds"):
        validate_fhir(data)


def test_unsupported_version() -> None:
    with pytest.raises(InvalidFhir, match="unsupported FHIR version"):
        validate_fhir(dumps(observation()), "STU3")
    with pytest.raises(InvalidFhir, match="unsupported FHIR version"):
        validate_fhir(dumps(observation()), "3.0.2")


def test_deep_nesting_is_invalid_not_a_crash() -> None:
    data = b'{"resourceType": "Observation", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(InvalidFhir):
        validate_fhir(data)


def coded(*codes: str) -> list[dict[str, Any]]:
    return [{"coding": [{"code": code}]} for code in codes]


@pytest.mark.parametrize(
    ("resource", "category"),
    [
        (observation(), "laboratory"),
        (observation(category=coded("vital-signs")), "vital-signs"),
        (observation(category=coded("laboratory")), "laboratory"),
        (observation(category=coded("imaging")), "imaging"),
        (observation(category=coded("social-history")), "general"),
        ({"resourceType": "DiagnosticReport", "category": coded("RAD")}, "imaging"),
        ({"resourceType": "DiagnosticReport", "category": coded("HM")}, "laboratory"),
        ({"resourceType": "DiagnosticReport"}, "laboratory"),
        ({"resourceType": "MedicationRequest"}, "medication"),
        ({"resourceType": "Immunization"}, "medication"),
        ({"resourceType": "AllergyIntolerance", "category": ["food"]}, "allergy"),
        ({"resourceType": "Condition"}, "condition"),
        ({"resourceType": "Procedure"}, "procedure"),
        ({"resourceType": "ImagingStudy"}, "imaging"),
        ({"resourceType": "DocumentReference"}, "document"),
        ({"resourceType": "Patient"}, "general"),
        ({"resourceType": "Encounter"}, "general"),
    ],
)
def test_category_for(resource: dict[str, Any], category: str) -> None:
    result = category_for(resource["resourceType"], category_codes(resource))
    assert result == category
    assert result in CATEGORIES


def test_category_codes_tolerates_any_shape() -> None:
    assert category_codes({"category": {"coding": [{"code": "a"}, {"code": 1}]}}) == ("a",)
    assert category_codes({"category": [None, "x", {"coding": "y"}]}) == ()
    assert category_codes({}) == ()


def test_validate_reports_category() -> None:
    assert validate_fhir(dumps(observation(category=coded("vital-signs")))).category == (
        "vital-signs"
    )
