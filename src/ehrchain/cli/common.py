"""What every command shares: options, passwords, the actor, and the one error exit.

Only the CLI exits the process. Commands raise typed errors like any other
code; ``guarded`` turns each into one red line and an exit code:

    1  the node refused the request, or the operation failed (e.g. verify found tampering)
    3  the node could not be reached
    4  local input is invalid (keystore password, FHIR, document, file)

The messages are the typed errors' own, which name ids and fields only; an
unexpected error prints its type name alone, never its message.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Final, ParamSpec, TypeVar

import typer
from rich.console import Console

from ehrchain.client import Actor, ApiError, ClientError, EhrClient, TransportError
from ehrchain.core.errors import CoreError
from ehrchain.crypto.errors import CryptoError, KeystoreError
from ehrchain.crypto.keystore import Identity, load_identity
from ehrchain.ehr.errors import EhrError

__all__ = [
    "EXIT_FAILED",
    "EXIT_INVALID",
    "EXIT_UNREACHABLE",
    "KeyOpt",
    "NodeOpt",
    "PasswordEnvOpt",
    "connect",
    "console",
    "err_console",
    "guarded",
    "load_key",
    "password_from",
]

EXIT_FAILED: Final = 1
EXIT_UNREACHABLE: Final = 3
EXIT_INVALID: Final = 4
DEFAULT_PASSWORD_ENV: Final = "EHRCHAIN_PASSWORD"  # noqa: S105 (a variable name, not a secret)
DEFAULT_NODE: Final = "http://127.0.0.1:8000"

console = Console()
err_console = Console(stderr=True)

NodeOpt = Annotated[
    str, typer.Option("--node", envvar="EHRCHAIN_NODE", help="Base URL of the node.")
]
KeyOpt = Annotated[
    Path,
    typer.Option("--key", envvar="EHRCHAIN_KEY", help="Your keystore file.", dir_okay=False),
]
PasswordEnvOpt = Annotated[
    str,
    typer.Option("--password-env", help="Environment variable holding the keystore password."),
]

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print one red line; return the Exit to raise."""
    err_console.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Map the typed errors a command raises to a red line and an exit code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except TransportError as exc:
            raise fail(f"cannot reach the node ({exc})", EXIT_UNREACHABLE) from None
        except ApiError as exc:
            raise fail(f"the node refused: {exc.code} ({exc.status}): {exc.message}") from None
        except (KeystoreError, EhrError, CoreError, CryptoError, ValueError) as exc:
            raise fail(_one_line(exc), EXIT_INVALID) from None
        except OSError as exc:
            raise fail(f"{exc.strerror or type(exc).__name__}", EXIT_INVALID) from None
        except ClientError as exc:
            raise fail(_one_line(exc)) from None
        except Exception as exc:
            raise fail(f"unexpected {type(exc).__name__}") from None

    return run


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def password_from(env_var: str, *, confirm: bool = False) -> str:
    """The password in ``env_var``, else asked for without echo."""
    value = os.environ.get(env_var)
    if value:
        return value
    entered: str = typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return entered


def load_key(path: Path, password_env: str) -> Identity:
    return load_identity(path, password_from(password_env))


@contextmanager
def connect(node: str, key: Path, password_env: str) -> Iterator[Actor]:
    """An Actor for the keystore at ``key`` on ``node``; the client is closed after."""
    identity = load_key(key, password_env)
    with EhrClient(node) as client:
        yield Actor(identity, client)
