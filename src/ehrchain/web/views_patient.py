"""The patient's pages: records, upload, opening a record, access and consent, history.

Opening a record is a POST (it signs a ``record.read``, the audit event) that
keeps the decrypted version in the user's session and redirects to a page that
shows it; the page and its inline file are served from the session, never
from a URL that carries content.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ehrchain.ehr.values import CATEGORIES, REASON_CODES, Scope
from ehrchain.web import forms
from ehrchain.web.app import Web, done
from ehrchain.web.custody import FHIR_RELEASES, Content, as_bytes, parse_scope
from ehrchain.web.errors import BadForm
from ehrchain.web.fhirview import readable
from ehrchain.web.sessions import Opened, Session

PATIENT: Final = "patient"
RELEASE_OF: Final = {number: name for name, number in FHIR_RELEASES.items()}
KIND_WORDS: Final = {
    "record.create": "added a record",
    "record.amend": "changed a record",
    "record.read": "opened a record",
    "read": "opened a record",
    "access.request": "asked for access",
    "access.grant": "granted access to",
    "access.revoke": "revoked the access of",
    "access.deny": "denied the request of",
    "delegate.add": "made a caregiver:",
    "delegate.remove": "removed the caregiver",
    "consent.authorise": "allowed to add records:",
    "consent.withdraw": "no longer allowed to add records:",
    "break_glass": "broke the glass (emergency access)",
    "access.break_glass": "broke the glass (emergency access)",
    "keys.rewrap": "delivered emergency keys to",
    "patient.register": "registered the patient",
}
TARGET_FIELD: Final = {
    "access.grant": "grantee",
    "access.revoke": "grantee",
    "access.deny": "provider",
    "delegate.add": "caregiver",
    "delegate.remove": "caregiver",
    "consent.authorise": "provider",
    "consent.withdraw": "provider",
    "keys.rewrap": "grantee",
}


def add_routes(router: APIRouter, web: Web) -> None:
    def my_records(session: Session) -> list[dict[str, Any]]:
        return web.service.patient_records(session.address, 0, 500)

    @router.get("/records")
    def records_page(request: Request) -> Response:
        session = web.require(request, PATIENT)
        requests = [
            r for r in web.service.access_requests(session.address) if r.get("status") == "pending"
        ]
        cared_for = [
            p
            for p in web.index.patients_of(session.address)
            if session.address in web.index.delegates(p)
        ]
        return web.page(
            request,
            "records.html",
            session,
            records=my_records(session),
            categories=CATEGORIES,
            pending=requests,
            cared_for=cared_for,
        )

    @router.post("/records")
    async def upload(request: Request) -> Response:
        session = web.require(request, PATIENT)
        form = await web.form(request, session)
        data, media_type = await forms.upload(form, "file", web.settings.max_upload_bytes)
        category = forms.text(form, "category")
        if category not in CATEGORIES:
            raise BadForm("category", "choose a category from the list")
        if media_type == "application/fhir+json":
            content = Content.fhir(data, forms.text(form, "fhir_version", False) or "R4")
        else:
            content = Content.document(data, media_type, category)
        record_id = await web.run(
            web.custody.create_record, session.identity, session.address, content
        )
        return done(
            session, f"Uploaded and encrypted as record {record_id}.", f"/records/{record_id}"
        )

    @router.get("/records/{record_id}")
    def record_page(request: Request, record_id: str) -> Response:
        session = web.require(request)
        record = web.service.record(record_id)
        if record is None:
            raise BadForm("record", "no such record")
        versions = [web.service.version(record_id, n) for n in range(int(record["latest"]), 0, -1)]
        web.index.catch_up()
        version_txs = {
            int(v["version"]): (web.index.version_tx(record_id, int(v["version"])) or b"").hex()
            for v in versions
            if v
        }
        return web.page(
            request,
            "record.html",
            session,
            record=record,
            versions=[v for v in versions if v],
            version_txs=version_txs,
            opened=None,
        )

    @router.post("/records/{record_id}/open")
    async def open_record(request: Request, record_id: str) -> Response:
        session = web.require(request)
        form = await web.form(request, session)
        raw = forms.text(form, "version", required=False)
        version = int(raw) if raw.isdigit() else None
        opened = await web.run(web.custody.open_record, session.identity, record_id, version)
        key = session.keep_opened(
            Opened(
                record_id=record_id,
                version=opened.version,
                media_type=opened.media_type,
                content=opened.plaintext,
                expires_at=web.sessions.now() + web.settings.opened_ttl_s,
            )
        )
        return RedirectResponse(f"/records/{record_id}/view/{key}", status_code=303)

    @router.get("/records/{record_id}/view/{key}")
    def view_record(request: Request, record_id: str, key: str) -> Response:
        session = web.require(request)
        opened = session.opened.get(key)
        if opened is None or opened.record_id != record_id:
            session.add_flash("error", "That view has expired; open the record again.")
            return RedirectResponse(f"/records/{record_id}", status_code=303)
        record = web.service.record(record_id) or {}
        versions = [
            web.service.version(record_id, n) for n in range(int(record.get("latest", 0)), 0, -1)
        ]
        web.index.catch_up()
        version_txs = {
            int(v["version"]): (web.index.version_tx(record_id, int(v["version"])) or b"").hex()
            for v in versions
            if v
        }
        shown: dict[str, Any] = {
            "key": key,
            "version": opened.version,
            "media_type": opened.media_type,
        }
        if opened.media_type == "application/fhir+json":
            try:
                shown["fhir"] = readable(json.loads(opened.content))
                shown["json_text"] = json.dumps(
                    json.loads(opened.content), indent=2, ensure_ascii=False
                )
            except ValueError:
                shown["fhir"] = None
        return web.page(
            request,
            "record.html",
            session,
            record=record,
            versions=[v for v in versions if v],
            version_txs=version_txs,
            opened=shown,
        )

    @router.get("/records/{record_id}/view/{key}/content")
    def record_content(request: Request, record_id: str, key: str) -> Response:
        session = web.require(request)
        opened = session.opened.get(key)
        if opened is None or opened.record_id != record_id:
            return Response("This view has expired; open the record again.", status_code=410)
        ext = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}.get(
            opened.media_type, "json"
        )
        disposition = "attachment" if request.query_params.get("download") else "inline"
        filename = f"{record_id}-v{opened.version}.{ext}"
        return Response(
            opened.content,
            media_type=opened.media_type,
            headers={
                "Content-Disposition": f'{disposition}; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )

    @router.post("/records/{record_id}/amend")
    async def amend(request: Request, record_id: str) -> Response:
        session = web.require(request, PATIENT, "provider")
        form = await web.form(request, session)
        record = await web.run(web.service.record, record_id)
        if record is None:
            raise BadForm("record", "no such record")
        if record["kind"] == "fhir":
            body = forms.text(form, "fhir_json", max_length=1_000_000).encode("utf-8")
            previous = await web.run(web.service.version, record_id, int(record["latest"])) or {}
            release = RELEASE_OF.get(str(previous.get("fhir_version", "")), "R4")
            content = Content.fhir(body, release, str(record["category"]))
        else:
            data, media_type = await forms.upload(form, "file", web.settings.max_upload_bytes)
            content = Content.document(data, media_type, str(record["category"]))
        number = await web.run(web.custody.amend_record, session.identity, record_id, content)
        return done(
            session, f"Saved version {number} of record {record_id}.", f"/records/{record_id}"
        )

    # -- access ---------------------------------------------------------------

    @router.get("/access")
    def access_page(request: Request) -> Response:
        session = web.require(request, PATIENT)
        web.index.catch_up()
        me = session.address
        providers = web.index.providers()
        return web.page(
            request,
            "access.html",
            session,
            requests=web.service.access_requests(me),
            grants=web.service.grants(me),
            delegates=web.index.delegates(me),
            records=my_records(session),
            categories=CATEGORIES,
            providers=sorted(providers),
            now_ms=int(time.time() * 1000),
        )

    @router.post("/access/grant")
    async def grant(request: Request) -> Response:
        session = web.require(request, PATIENT)
        form = await web.form(request, session)
        grantee = forms.address(form, "grantee", web.accounts)
        scope = parse_scope(
            forms.text(form, "scope"),
            [str(c) for c in form.getlist("categories")],
            [str(r) for r in form.getlist("records")],
        )
        expires = forms.expiry_ms(form, "expires", web.wall_ms())
        await web.run(web.custody.grant, session.identity, session.address, grantee, scope, expires)
        if form.get("allow_create"):
            await web.run(web.custody.consent, session.identity, grantee, True)
        return done(session, f"Access granted to {web.name(grantee)}.", "/access")

    @router.post("/access/approve")
    async def approve(request: Request) -> Response:
        session = web.require(request, PATIENT)
        form = await web.form(request, session)
        provider = forms.address(form, "provider", web.accounts)
        wanted = [
            r for r in web.service.access_requests(session.address) if r["address"] == provider
        ]
        if not wanted:
            raise BadForm("provider", "has no pending request")
        scope = Scope.from_value(wanted[0]["scope"])
        expires = forms.expiry_ms(form, "expires", web.wall_ms())
        await web.run(
            web.custody.grant, session.identity, session.address, provider, scope, expires
        )
        return done(session, f"Request of {web.name(provider)} approved.", "/access")

    @router.post("/access/deny")
    async def deny(request: Request) -> Response:
        session = web.require(request, PATIENT)
        form = await web.form(request, session)
        provider = forms.address(form, "provider", web.accounts)
        await web.run(web.custody.deny, session.identity, session.address, provider)
        return done(session, f"Request of {web.name(provider)} denied.", "/access")

    @router.post("/access/revoke")
    async def revoke(request: Request) -> Response:
        session = web.require(request, PATIENT)
        form = await web.form(request, session)
        grantee = forms.address(form, "grantee", web.accounts)
        await web.run(web.custody.revoke, session.identity, session.address, grantee)
        return done(
            session,
            f"Access of {web.name(grantee)} revoked; new versions use keys they never get.",
            "/access",
        )

    @router.post("/access/delegate")
    async def delegate(request: Request) -> Response:
        session = web.require(request, PATIENT)
        form = await web.form(request, session)
        caregiver = forms.address(form, "caregiver", web.accounts)
        if form.get("remove"):
            await web.run(web.custody.undelegate, session.identity, caregiver)
            return done(session, f"{web.name(caregiver)} is no longer your caregiver.", "/access")
        await web.run(web.custody.delegate, session.identity, caregiver)
        return done(session, f"{web.name(caregiver)} can now act for you as caregiver.", "/access")

    @router.post("/access/consent")
    async def consent(request: Request) -> Response:
        session = web.require(request, PATIENT)
        form = await web.form(request, session)
        provider = forms.address(form, "provider", web.accounts)
        allow = forms.text(form, "allow") == "yes"
        await web.run(web.custody.consent, session.identity, provider, allow)
        verb = "may now add" if allow else "may no longer add"
        return done(session, f"{web.name(provider)} {verb} records to your file.", "/access")

    @router.get("/history")
    def history(request: Request) -> Response:
        session = web.require(request, PATIENT)
        events = web.service.history(session.address, 0, 500)
        reasons: dict[str, str] = {}
        targets: dict[str, str] = {}
        for event in events:
            kind = str(event["kind"])
            if kind not in TARGET_FIELD and kind not in ("break_glass", "access.break_glass"):
                continue
            found = web.service.tx(bytes.fromhex(event["tx_id"]))
            if found is None:
                continue
            payload = found[0].payload
            if kind in TARGET_FIELD:
                targets[event["tx_id"]] = web.name(str(payload[TARGET_FIELD[kind]]))
            else:
                sealed = as_bytes(payload["reason"])
                text = web.custody.open_reason(session.identity, event["actor"], sealed)
                reasons[event["tx_id"]] = f"{payload['reason_code']}: {text}"
        template = "history_rows.html" if request.headers.get("hx-request") else "history.html"
        return web.page(
            request,
            template,
            session,
            events=events,
            words=KIND_WORDS,
            reasons=reasons,
            targets=targets,
            reason_codes=REASON_CODES,
        )
