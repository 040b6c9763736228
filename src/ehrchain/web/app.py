"""The web front end as one router the node includes at ``/``.

``create_web(service, settings)`` builds everything the pages share (accounts,
sessions, the login limiter, the chain follower and the notification hub) and
returns an ``APIRouter`` whose routes all use ``WebRoute``: it turns any error
into a page with a plain message (or a message on the page the form came from)
and adds the security headers. Pages talk to the node service only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ehrchain.web import csrf
from ehrchain.web.accounts import AccountStore
from ehrchain.web.chainindex import ChainIndex, Follower
from ehrchain.web.custody import Custody, Service
from ehrchain.web.errors import CsrfFailed, Forbidden, WebError, code_of, describe, status_of
from ehrchain.web.notifications import Hub, Notifier
from ehrchain.web.ratelimit import LoginLimiter
from ehrchain.web.render import html, make_env, short, with_headers
from ehrchain.web.sessions import COOKIE, Session, SessionStore
from ehrchain.web.settings import WebSettings

log = logging.getLogger("ehrchain.web")
P = ParamSpec("P")
T = TypeVar("T")


class LoginRequired(WebError):
    code = "login_required"
    status = 401

    def __init__(self) -> None:
        super().__init__("please sign in")


class PasswordChangeRequired(WebError):
    code = "password_change_required"
    status = 403


@dataclass
class Web:
    """What every page handler shares; built once by ``create_web``."""

    service: Service
    settings: WebSettings
    accounts: AccountStore
    sessions: SessionStore
    limiter: LoginLimiter
    ip_limiter: LoginLimiter
    index: ChainIndex
    hub: Hub
    custody: Custody
    env: Environment
    follower: Follower
    wall_ms: Callable[[], int] = field(default=lambda: time.time_ns() // 1_000_000)

    # -- sessions -------------------------------------------------------------

    def session_or_none(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def require(self, request: Request, *roles: str) -> Session:
        """The signed-in session, if its role is one of ``roles`` (any role when none given)."""
        session = self.session_or_none(request)
        if session is None:
            raise LoginRequired()
        if session.must_change and request.url.path not in ("/password", "/logout"):
            raise PasswordChangeRequired("choose your own password first")
        if roles and session.role not in roles:
            raise Forbidden("this page is for another role")
        return session

    async def form(self, request: Request, session: Session | None) -> FormData:
        """The posted form, after the origin and anti-forgery checks."""
        csrf.check_origin(request)
        form = await request.form(max_part_size=self.settings.max_upload_bytes)
        given = form.get(csrf.FIELD)
        token = csrf.token_from(request, given if isinstance(given, str) else None)
        if session is None:
            csrf.check(request.cookies.get(csrf.LOGIN_COOKIE), token)
        else:
            csrf.check(session.csrf_token, token)
        return form

    # -- rendering ------------------------------------------------------------

    def name(self, address: str) -> str:
        if not address:
            return "—"
        account = self.accounts.by_address(address)
        return account.display_name if account is not None else short(address)

    def page(
        self,
        request: Request,
        template: str,
        session: Session | None,
        status: int = 200,
        **ctx: Any,
    ) -> Response:
        notices = self.hub.recent(session.address)[:8] if session else []
        return html(
            self.env,
            template,
            status,
            request=request,
            session=session,
            flashes=session.take_flash() if session else [],
            notices=notices,
            name=self.name,
            path=request.url.path,
            **ctx,
        )

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking service call off the event loop."""
        return await run_in_threadpool(fn, *args, **kwargs)


def done(session: Session, message: str, to: str) -> Response:
    """After a successful form: say what happened and go on (post/redirect/get)."""
    session.add_flash("ok", message)
    return RedirectResponse(to, status_code=303)


def _back_to(request: Request) -> str | None:
    """The same-site page a form was posted from, if the browser said so."""
    referer = request.headers.get("referer")
    if not referer:
        return None
    parts = urlsplit(referer)
    if parts.netloc != request.headers.get("host", ""):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def route_class(web_ref: list[Web]) -> type[APIRoute]:
    """An APIRoute that renders errors as pages and adds security headers."""

    class WebRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            original = super().get_route_handler()
            route_path = self.path

            async def handler(request: Request) -> Response:
                try:
                    response = await original(request)
                except Exception as exc:  # every error becomes a page; see errors.describe
                    response = await _error_response(web_ref[0], request, exc, route_path)
                return with_headers(response)

            return handler

    return WebRoute


async def _error_response(web: Web, request: Request, exc: Exception, route: str) -> Response:
    if isinstance(exc, LoginRequired):
        target = "/login?next=" + quote(request.url.path, safe="/")
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    if isinstance(exc, PasswordChangeRequired):
        return RedirectResponse("/password", status_code=303)
    if isinstance(exc, RequestValidationError):
        message, status = "Some required fields are missing or malformed.", 400
    elif isinstance(exc, HTTPException):
        message, status = str(exc.detail), exc.status_code
    else:
        message, status = describe(exc), status_of(exc)
    if status >= 500:
        log.error("web request failed", extra={"route": route, "error": type(exc).__name__})
    else:
        log.info("web request refused", extra={"route": route, "code": code_of(exc)})
    session = web.session_or_none(request)
    back = _back_to(request)
    if (
        request.method == "POST"
        and session is not None
        and back is not None
        and not isinstance(exc, CsrfFailed)
        and status < 500
    ):
        session.add_flash("error", message)
        return RedirectResponse(back, status_code=303)
    return web.page(
        request, "error.html", session, status=status, message=message, http_status=status
    )


def create_web(service: Any, settings: WebSettings | None = None) -> APIRouter:
    """The web UI for ``service``; include it in the node's app at ``/``."""
    if settings is None:
        settings = WebSettings(data_dir=Path(service.settings.data_dir))
    accounts = AccountStore(settings.accounts_path, settings.password_cost, settings.keystore_kdf)
    index = ChainIndex(service)
    hub = Hub()
    follower = Follower(index, settings.poll_s)
    env = make_env()
    web_ref: list[Web] = []
    web = Web(
        service=service,
        settings=settings,
        accounts=accounts,
        sessions=SessionStore(settings.session_idle_s, settings.session_max_s),
        limiter=LoginLimiter(
            settings.login_max_failures, settings.login_window_s, settings.login_lockout_s
        ),
        ip_limiter=LoginLimiter(
            4 * settings.login_max_failures, settings.login_window_s, settings.login_lockout_s
        ),
        index=index,
        hub=hub,
        custody=Custody(service, index, settings.tx_wait_s),
        env=env,
        follower=follower,
    )
    web_ref.append(web)
    index.on_tx(Notifier(service, index, hub, web.name, accounts.addresses))
    follower.start()

    from ehrchain.web import views_admin, views_auth, views_explorer, views_patient, views_provider

    router = APIRouter(route_class=route_class(web_ref), include_in_schema=False)
    views_auth.add_routes(router, web)
    views_patient.add_routes(router, web)
    views_provider.add_routes(router, web)
    views_admin.add_routes(router, web)
    views_explorer.add_routes(router, web)
    router.on_shutdown.append(follower.stop)
    return router


Handler = Callable[..., Awaitable[Response]]
