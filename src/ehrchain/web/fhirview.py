"""FHIR resources for people: a readable summary and rows, and the forms that build them.

Rendering never trusts the resource's narrative XHTML (it could hold script);
it reads the structured elements and lets the template escape every value.
The four forms (Observation, Condition, MedicationRequest, AllergyIntolerance)
build R4 JSON that ``ehr.fhir`` then validates like any other upload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ehrchain.web.errors import BadForm

FORM_TYPES: Final = ("Observation", "Condition", "MedicationRequest", "AllergyIntolerance")
_SKIP: Final = frozenset({"resourceType", "id", "meta", "text", "contained", "extension"})
_FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class Readable:
    resource_type: str
    title: str
    headline: str
    rows: tuple[tuple[str, str], ...]
    pretty_json: str


def label(key: str) -> str:
    """camelCase -> "Camel case"; value[x] names lose their type suffix."""
    key = re.sub(r"^(value|effective|onset|abatement|medication)[A-Z].*$", r"\1", key)
    words = re.sub(r"(?<!^)([A-Z])", r" \1", key).lower()
    return words[:1].upper() + words[1:]


def text_of(value: Any) -> str:
    """A short human reading of any FHIR element."""
    if isinstance(value, str | int | float | bool):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, list):
        return "; ".join(t for t in (text_of(v) for v in value) if t)
    if not isinstance(value, Mapping):
        return ""
    if "text" in value and isinstance(value["text"], str):
        return value["text"]
    if "coding" in value:
        return text_of([_coding(c) for c in value["coding"] if isinstance(c, Mapping)])
    if "value" in value and ("unit" in value or "code" in value):
        return f"{value['value']} {value.get('unit') or value.get('code', '')}".strip()
    if "display" in value or "reference" in value:
        return str(value.get("display") or value.get("reference"))
    if "start" in value or "end" in value:
        return f"{value.get('start', '…')} to {value.get('end', '…')}"
    if "low" in value or "high" in value:
        return f"{text_of(value.get('low', '…'))} to {text_of(value.get('high', '…'))}"
    if "code" in value or "system" in value:
        return _coding(value)
    parts = [f"{label(k)}: {text_of(v)}" for k, v in value.items() if k not in _SKIP]
    return ", ".join(p for p in parts if not p.endswith(": "))


def _coding(coding: Mapping[str, Any]) -> str:
    display = coding.get("display")
    code = coding.get("code")
    if display and code:
        return f"{display} ({code})"
    return str(display or code or "")


def readable(document: Mapping[str, Any]) -> Readable:
    rtype = str(document.get("resourceType", "Resource"))
    title_source = (
        document.get("code")
        or document.get("medicationCodeableConcept")
        or document.get("vaccineCode")
        or document.get("type")
    )
    title = text_of(title_source) if title_source else rtype
    headline = ""
    for key in document:
        if key.startswith("value") and key != "value":
            headline = text_of(document[key])
            break
    if not headline and "dosageInstruction" in document:
        headline = text_of(document["dosageInstruction"])
    if not headline and "criticality" in document:
        headline = f"criticality {document['criticality']}"
    rows = tuple(
        (label(k), text) for k, v in document.items() if k not in _SKIP and (text := text_of(v))
    )
    return Readable(
        rtype, title, headline, rows, json.dumps(document, indent=2, ensure_ascii=False)
    )


def _concept(text: str, system: str = "", code: str = "") -> dict[str, Any]:
    concept: dict[str, Any] = {"text": text}
    if code:
        concept["coding"] = [{"system": system, "code": code, "display": text}]
    return concept


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise BadForm(name, "is required")
    if len(value) > 1000:
        raise BadForm(name, "is too long")
    return value


def _date(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if value and not _DATE.fullmatch(value):
        raise BadForm(name, "must be a date (YYYY-MM-DD)")
    return value


def subject_reference(patient_id: str, display: str) -> dict[str, str]:
    if _FHIR_ID.fullmatch(patient_id):
        return {"reference": f"Patient/{patient_id}", "display": display}
    return {"display": display}


def build_resource(rtype: str, form: Mapping[str, str], subject: dict[str, str]) -> bytes:
    """R4 JSON for one of the form types, from the submitted fields."""
    note = form.get("note", "").strip()
    resource: dict[str, Any]
    if rtype == "Observation":
        resource = {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": form.get("obs_category") or "laboratory",
                        }
                    ]
                }
            ],
            "code": _concept(
                _required(form, "code_text"), "http://loinc.org", form.get("code", "").strip()
            ),
            "subject": subject,
        }
        raw = form.get("value", "").strip()
        if raw:
            try:
                number = float(raw)
            except ValueError:
                raise BadForm("value", "must be a number") from None
            quantity: dict[str, Any] = {"value": int(number) if number.is_integer() else number}
            unit = form.get("unit", "").strip()
            if unit:
                quantity["unit"] = unit
            resource["valueQuantity"] = quantity
        elif form.get("value_text", "").strip():
            resource["valueString"] = form["value_text"].strip()
        else:
            raise BadForm("value", "give a number or a text result")
        if _date(form, "date"):
            resource["effectiveDateTime"] = form["date"].strip()
    elif rtype == "Condition":
        resource = {
            "resourceType": "Condition",
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": form.get("clinical_status") or "active",
                    }
                ]
            },
            "code": _concept(
                _required(form, "code_text"), "http://snomed.info/sct", form.get("code", "").strip()
            ),
            "subject": subject,
        }
        if _date(form, "date"):
            resource["onsetDateTime"] = form["date"].strip()
    elif rtype == "MedicationRequest":
        resource = {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": _concept(_required(form, "code_text")),
            "subject": subject,
            "dosageInstruction": [{"text": _required(form, "dosage")}],
        }
        if _date(form, "date"):
            resource["authoredOn"] = form["date"].strip()
    elif rtype == "AllergyIntolerance":
        resource = {
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                        "code": "active",
                    }
                ]
            },
            "code": _concept(_required(form, "code_text")),
            "patient": subject,
        }
        if form.get("criticality") in ("low", "high", "unable-to-assess"):
            resource["criticality"] = form["criticality"]
        reaction = form.get("reaction", "").strip()
        if reaction:
            resource["reaction"] = [{"manifestation": [{"text": reaction}]}]
    else:
        raise BadForm("resource_type", f"choose one of {', '.join(FORM_TYPES)}")
    if note:
        resource["note"] = [{"text": note}]
    return json.dumps(resource, ensure_ascii=False).encode("utf-8")
