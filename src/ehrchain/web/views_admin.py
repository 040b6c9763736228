"""Hospital and consortium administration: registering people, admitting hospitals,
verifying providers and managing validators.

Registering a person creates their keys here, seals them under the initial
password the admin chose (the person must change it at first sign-in), and
submits the registration signed by the admin. If the chain refuses it, the web
account is removed again, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ehrchain.core.identity import new_identity
from ehrchain.crypto.keystore import Identity
from ehrchain.web import forms
from ehrchain.web.accounts import check_password, check_username
from ehrchain.web.app import Web, done
from ehrchain.web.errors import BadForm
from ehrchain.web.sessions import Session

HOSPITAL_ADMIN: Final = "hospital_admin"
CONSORTIUM: Final = ("consortium_admin", "validator")


def add_routes(router: APIRouter, web: Web) -> None:
    def create_person(
        session: Session, form: Any, role: str, hospital: str, submit: Callable[[Identity], str]
    ) -> Identity:
        """Make keys and a web account for a new person, then submit; undo on refusal."""
        username = check_username(forms.text(form, "username"))
        password = check_password(forms.text(form, "password"), web.settings.min_password_length)
        display = forms.text(form, "display_name", max_length=80)
        person = new_identity(display, role)
        web.accounts.create(
            username,
            password,
            person,
            display_name=display,
            hospital=hospital,
            created_by=session.username,
            must_change=True,
            now_ms=web.wall_ms(),
        )
        try:
            submit(person)
        except Exception:
            web.accounts.delete(username)
            raise
        return person

    @router.get("/hospital")
    def hospital(request: Request) -> Response:
        session = web.require(request, HOSPITAL_ADMIN)
        web.index.catch_up()
        me = web.service.account(session.address) or {}
        people = []
        for address in web.index.registered_by(session.address):
            account = web.service.account(address) or {}
            people.append({"address": address, **account})
        emergencies = [
            (patient, provider)
            for patient in web.index.registered_by(session.address)
            for provider in web.index.emergency_providers(patient)
        ]
        return web.page(
            request,
            "hospital.html",
            session,
            me=me,
            people=people,
            emergencies=emergencies,
            web_accounts={a.address: a.username for a in web.accounts.created_by(session.username)},
        )

    @router.post("/hospital/people")
    async def register(request: Request) -> Response:
        session = web.require(request, HOSPITAL_ADMIN)
        form = await web.form(request, session)
        role = forms.text(form, "role")
        if role not in ("patient", "provider"):
            raise BadForm("role", "choose patient or provider")
        licence = forms.text(form, "licence", max_length=32) if role == "provider" else ""
        me = await web.run(web.service.account, session.address) or {}
        hospital_id = str(me.get("hospital", ""))

        def submit(person: Identity) -> str:
            return web.custody.register(session.identity, person, licence)

        person = await web.run(create_person, session, form, role, hospital_id, submit)
        what = "Provider" if licence else "Patient"
        return done(
            session,
            f"{what} {person.label} registered with address {person.address}; "
            "give them their username and initial password.",
            "/hospital",
        )

    @router.post("/hospital/emergency-keys")
    async def emergency_keys(request: Request) -> Response:
        session = web.require(request, HOSPITAL_ADMIN)
        form = await web.form(request, session)
        patient = forms.address(form, "patient", web.accounts)
        provider = forms.address(form, "provider", web.accounts)
        await web.run(web.custody.emergency_rewrap, session.identity, patient, provider)
        return done(session, f"Emergency keys delivered to {web.name(provider)}.", "/hospital")

    @router.get("/consortium")
    def consortium(request: Request) -> Response:
        session = web.require(request, *CONSORTIUM)
        web.index.catch_up()
        providers = []
        for address, info in sorted(web.index.providers().items()):
            account = web.service.account(address) or {}
            providers.append({"address": address, **info, **account})
        return web.page(
            request,
            "consortium.html",
            session,
            status_info=web.service.status(),
            hospitals=web.index.hospitals(),
            providers=providers,
        )

    @router.post("/consortium/hospitals")
    async def admit(request: Request) -> Response:
        session = web.require(request, "consortium_admin")
        form = await web.form(request, session)
        hospital_id = forms.text(form, "hospital_id", max_length=32)
        name = forms.text(form, "name", max_length=128)

        def submit(head: Identity) -> str:
            return web.custody.admit_hospital(session.identity, hospital_id, name, head)

        await web.run(create_person, session, form, HOSPITAL_ADMIN, hospital_id, submit)
        return done(session, f"Hospital {name} admitted; its admin can now sign in.", "/consortium")

    @router.post("/consortium/verify")
    async def verify(request: Request) -> Response:
        session = web.require(request, "validator")
        form = await web.form(request, session)
        provider = forms.address(form, "provider", web.accounts)
        await web.run(web.custody.verify_provider, session.identity, provider)
        return done(
            session, f"{web.name(provider)} is verified and may now write records.", "/consortium"
        )

    @router.post("/consortium/validators")
    async def validators(request: Request) -> Response:
        session = web.require(request, "consortium_admin")
        form = await web.form(request, session)
        address = forms.address(form, "address", web.accounts)
        if forms.text(form, "action") == "remove":
            await web.run(web.custody.remove_validator, session.identity, address)
            return done(session, f"Validator {address} removed.", "/consortium")
        try:
            key = bytes.fromhex(forms.text(form, "signing_key"))
        except ValueError:
            raise BadForm("signing_key", "must be the 64 hex digits of an Ed25519 key") from None
        await web.run(web.custody.add_validator, session.identity, address, key)
        return done(session, f"Validator {address} added.", "/consortium")
