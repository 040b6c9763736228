"""Sign-in and out, password change, profile, live notifications and static files."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib import resources
from typing import Final

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from ehrchain.web import csrf
from ehrchain.web.accounts import check_password
from ehrchain.web.app import Web, done
from ehrchain.web.errors import BadForm, LoginFailed, RateLimited
from ehrchain.web.sessions import COOKIE

STATIC_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
HOME_BY_ROLE: Final = {
    "patient": "/records",
    "provider": "/patients",
    "hospital_admin": "/hospital",
    "consortium_admin": "/consortium",
    "validator": "/consortium",
}
KEEPALIVE_S: Final = 15.0


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def add_routes(router: APIRouter, web: Web) -> None:
    def login_page(request: Request, error: str = "", status: int = 200) -> Response:
        token = request.cookies.get(csrf.LOGIN_COOKIE) or csrf.new_token()
        response = web.page(
            request,
            "login.html",
            None,
            status=status,
            login_token=token,
            error=error,
            next=_safe_next(request.query_params.get("next")),
        )
        response.set_cookie(
            csrf.LOGIN_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=web.settings.secure_cookies,
            path="/login",
        )
        return response

    @router.get("/")
    def home(request: Request) -> Response:
        session = web.session_or_none(request)
        if session is None:
            return web.page(request, "landing.html", None, status_info=web.service.status())
        return RedirectResponse(HOME_BY_ROLE.get(session.role, "/profile"), status_code=303)

    @router.get("/login")
    def login_form(request: Request) -> Response:
        if web.session_or_none(request) is not None:
            return RedirectResponse("/", status_code=303)
        return login_page(request)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await web.form(request, None)
        username = str(form.get("username", "")).strip().lower()
        password = str(form.get("password", ""))
        client = request.client.host if request.client else "unknown"
        user_key, ip_key = f"user:{username}", f"ip:{client}"
        try:
            web.limiter.check(user_key)
            web.ip_limiter.check(ip_key)
            account, identity = await web.run(web.accounts.authenticate, username, password)
        except RateLimited as exc:
            return login_page(request, str(exc), 429)
        except LoginFailed as exc:
            web.limiter.failed(user_key)
            web.ip_limiter.failed(ip_key)
            return login_page(request, f"Sign-in failed: {exc}.", 401)
        web.limiter.succeeded(user_key)
        on_chain = await web.run(web.service.account, account.address)
        role = str(on_chain["role"]) if on_chain else account.role
        session = web.sessions.create(
            username=account.username,
            display_name=account.display_name,
            role=role,
            address=account.address,
            identity=identity,
            must_change=account.must_change,
        )
        if on_chain is None:
            session.add_flash("error", "Your account is not on the chain yet; ask your hospital.")
        target = "/password" if account.must_change else _safe_next(str(form.get("next", "")))
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            session.session_id,
            httponly=True,
            samesite="strict",
            secure=web.settings.secure_cookies,
            path="/",
        )
        response.delete_cookie(csrf.LOGIN_COOKIE, path="/login")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session = web.session_or_none(request)
        if session is not None:
            await web.form(request, session)
            web.sessions.drop(session.session_id)
        response = RedirectResponse("/login?bye=1", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.get("/password")
    def password_form(request: Request) -> Response:
        session = web.require(request)
        return web.page(request, "password.html", session)

    @router.post("/password")
    async def change_password(request: Request) -> Response:
        session = web.require(request)
        form = await web.form(request, session)
        new = str(form.get("new_password", ""))
        if new != str(form.get("confirm", "")):
            raise BadForm("confirm", "the two new passwords differ")
        check_password(new, web.settings.min_password_length)
        if new == str(form.get("old_password", "")):
            raise BadForm("new_password", "must differ from the current one")
        try:
            await web.run(
                web.accounts.change_password,
                session.username,
                str(form.get("old_password", "")),
                new,
            )
        except LoginFailed:
            raise BadForm("old_password", "is not your current password") from None
        session.must_change = False
        return done(session, "Your password is changed.", "/")

    @router.get("/profile")
    def profile(request: Request) -> Response:
        session = web.require(request)
        account = web.service.account(session.address)
        stored = web.accounts.get(session.username)
        return web.page(
            request,
            "profile.html",
            session,
            account=account,
            stored=stored,
            signing_key=session.identity.signing.public_key,
            encryption_key=session.identity.encryption.public_key,
        )

    @router.get("/notifications")
    def notifications(request: Request) -> Response:
        session = web.require(request)
        return web.page(
            request, "notifications.html", session, all_notices=web.hub.recent(session.address)
        )

    @router.get("/events")
    async def events(request: Request) -> Response:
        session = web.require(request)
        session_id = session.session_id

        async def stream() -> AsyncIterator[str]:
            sub = web.hub.subscribe(session.address)
            try:
                yield "retry: 3000\n\n"
                while True:
                    if await request.is_disconnected():
                        break
                    if not web.sessions.alive(session_id):
                        yield "event: expired\ndata: {}\n\n"
                        break
                    try:
                        notice = await asyncio.wait_for(sub.queue.get(), timeout=KEEPALIVE_S)
                    except TimeoutError:
                        yield ": keepalive\n\n"
                        continue
                    yield f"event: notice\nid: {notice.id}\ndata: {notice.to_json()}\n\n"
            finally:
                web.hub.unsubscribe(sub)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    static_root = resources.files("ehrchain.web").joinpath("static")

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        suffix = name[name.rfind(".") :] if "." in name else ""
        if suffix not in STATIC_TYPES or "/" in name or name.startswith("."):
            return Response("not found", status_code=404)
        item = static_root.joinpath(name)
        if not item.is_file():
            return Response("not found", status_code=404)
        return Response(
            item.read_bytes(),
            media_type=STATIC_TYPES[suffix],
            headers={"Cache-Control": "public, max-age=3600"},
        )
