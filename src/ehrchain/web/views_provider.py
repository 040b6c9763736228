"""The provider's pages: my patients, a patient's chart, writing records, asking for access.

A caregiver (a delegate) sees the same chart of the patients they care for.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ehrchain.ehr.values import CATEGORIES, REASON_CODES
from ehrchain.web import forms
from ehrchain.web.app import Web, done
from ehrchain.web.custody import Content, parse_scope
from ehrchain.web.errors import BadForm
from ehrchain.web.fhirview import FORM_TYPES, build_resource, subject_reference

PROVIDER: Final = "provider"


def add_routes(router: APIRouter, web: Web) -> None:
    def relation(patient: str, me: str) -> dict[str, Any]:
        """What the signed-in user holds for this patient, from committed state."""
        grant = next((g for g in web.service.grants(patient) if g["address"] == me), None)
        now = web.wall_ms()
        active = (
            grant is not None
            and grant.get("status") == "active"
            and (not grant.get("expires_ms") or int(grant["expires_ms"]) > now)
        )
        request = next(
            (r for r in web.service.access_requests(patient) if r["address"] == me), None
        )
        return {
            "grant": grant,
            "active": active,
            "request": request,
            "delegate": me in web.index.delegates(patient),
            "emergency": me in web.index.emergency_providers(patient),
        }

    @router.get("/patients")
    def patients(request: Request) -> Response:
        session = web.require(request, PROVIDER, "patient")
        web.index.catch_up()
        rows = []
        for patient in web.index.patients_of(session.address):
            rel = relation(patient, session.address)
            rows.append({"address": patient, **rel})
        rows.sort(
            key=lambda r: (not (r["active"] or r["delegate"] or r["emergency"]), r["address"])
        )
        account = web.service.account(session.address) or {}
        return web.page(request, "patients.html", session, rows=rows, account=account)

    @router.get("/patients/find")
    def find(request: Request, who: str = "") -> Response:
        session = web.require(request, PROVIDER, "patient")
        value = who.strip()
        account = web.accounts.get(value) if not value.startswith("ehr1") else None
        address = account.address if account else value
        if not address or web.service.account(address) is None:
            session.add_flash("error", "No patient with that address or username.")
            return web.page(request, "patients.html", session, rows=[], account={}, status=404)
        from starlette.responses import RedirectResponse

        return RedirectResponse(f"/patients/{address}", status_code=303)

    @router.get("/patients/{patient}")
    def chart(request: Request, patient: str) -> Response:
        session = web.require(request, PROVIDER, "patient")
        account = web.service.account(patient)
        if account is None or account.get("role") != "patient":
            raise BadForm("patient", "no patient with that address")
        return web.page(
            request,
            "chart.html",
            session,
            patient=patient,
            patient_account=account,
            rel=relation(patient, session.address),
            records=web.service.patient_records(patient, 0, 500),
            categories=CATEGORIES,
            form_types=FORM_TYPES,
            reason_codes=REASON_CODES,
        )

    @router.post("/patients/{patient}/records")
    async def create(request: Request, patient: str) -> Response:
        session = web.require(request, PROVIDER)
        form = await web.form(request, session)
        rtype = forms.text(form, "resource_type")
        if rtype == "upload":
            data, media_type = await forms.upload(form, "file", web.settings.max_upload_bytes)
            category = forms.text(form, "category")
            if category not in CATEGORIES:
                raise BadForm("category", "choose a category from the list")
            if media_type == "application/fhir+json":
                content = Content.fhir(data, "R4")
            else:
                content = Content.document(data, media_type, category)
        elif rtype == "json":
            body = forms.text(form, "fhir_json", max_length=1_000_000).encode("utf-8")
            content = Content.fhir(body, forms.text(form, "fhir_version", False) or "R4")
        else:
            account = await web.run(web.service.account, patient) or {}
            patient_id = str((account.get("patient") or {}).get("patient_id", ""))
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            body = build_resource(rtype, fields, subject_reference(patient_id, web.name(patient)))
            content = Content.fhir(body, "R4")
        record_id = await web.run(web.custody.create_record, session.identity, patient, content)
        return done(session, f"Saved as record {record_id}.", f"/patients/{patient}")

    @router.post("/patients/{patient}/request")
    async def request_access(request: Request, patient: str) -> Response:
        session = web.require(request, PROVIDER)
        form = await web.form(request, session)
        scope = parse_scope(
            forms.text(form, "scope"),
            [str(c) for c in form.getlist("categories")],
            [],
        )
        await web.run(web.custody.request_access, session.identity, patient, scope)
        return done(
            session, "Access requested; the patient has been notified.", f"/patients/{patient}"
        )

    @router.post("/patients/{patient}/break-glass")
    async def break_glass(request: Request, patient: str) -> Response:
        session = web.require(request, PROVIDER)
        form = await web.form(request, session)
        code = forms.text(form, "reason_code")
        if code not in REASON_CODES:
            raise BadForm("reason_code", "choose a reason from the list")
        reason = forms.text(form, "reason", max_length=2000)
        if len(reason) < 10:
            raise BadForm("reason", "explain the emergency in a sentence (10+ characters)")
        await web.run(web.custody.break_glass, session.identity, patient, code, reason)
        return done(
            session,
            "Emergency access recorded and the patient notified. The hospital's custodian "
            "now delivers the keys of existing records.",
            f"/patients/{patient}",
        )
