"""The web UI: server-rendered pages (Jinja2 + htmx) over the node service.

``create_web(service)`` returns a router the node includes at ``/``.
"""

from ehrchain.web.app import create_web
from ehrchain.web.settings import FAST_PASSWORD_COST, PasswordCost, WebSettings

__all__ = ["FAST_PASSWORD_COST", "PasswordCost", "WebSettings", "create_web"]
