"""``ehrchain keys``: create, show and rotate self-custodied keystores.

Private keys are generated on this machine and written only encrypted
(Argon2id + AES-256-GCM, mode 0600). ``show --json`` prints the public card a
hospital admin needs to register the identity; nothing secret is ever printed.
Rotation writes the rotated keystore beside the old one first and swaps it in
only after the node committed the rotation, so a failure leaves a usable file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ehrchain.cli.common import (
    DEFAULT_NODE,
    DEFAULT_PASSWORD_ENV,
    NodeOpt,
    PasswordEnvOpt,
    console,
    fail,
    guarded,
    load_key,
    password_from,
)
from ehrchain.client import Actor, EhrClient, new_identity, public_identity
from ehrchain.crypto.hpke import EncryptionKey
from ehrchain.crypto.keystore import load_identity, save_identity
from ehrchain.crypto.signing import SigningKey

__all__ = ["keys_app"]

keys_app = typer.Typer(help="Create, show and rotate keystores.", no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="Keystore file.", dir_okay=False)]


@keys_app.command("new")
@guarded
def keys_new(
    out: Annotated[Path, typer.Option("--out", help="Where to write the keystore.")],
    label: Annotated[str, typer.Option("--label", help="A name for this identity.")],
    role: Annotated[str, typer.Option("--role", help="Role note stored in the file.")] = "",
    password_env: PasswordEnvOpt = DEFAULT_PASSWORD_ENV,
) -> None:
    """Generate new signing and encryption keys and store them encrypted."""
    if out.exists():
        raise fail(f"{out} exists; refusing to overwrite a keystore", 4)
    identity = new_identity(label, role)
    save_identity(out, identity, password_from(password_env, confirm=True))
    console.print(f"address [bold]{identity.address}[/bold] written to {out}")


@keys_app.command("show")
@guarded
def keys_show(
    path: FileArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the public card as JSON.")] = False,
    password_env: PasswordEnvOpt = DEFAULT_PASSWORD_ENV,
) -> None:
    """Show an identity's address and public keys (never the private keys)."""
    identity = load_key(path, password_env)
    card = public_identity(identity)
    if as_json:
        typer.echo(json.dumps(card.to_json(), indent=2))
        return
    table = Table(show_header=False, box=None)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in (
        ("label", card.label),
        ("role", card.role or "-"),
        ("address", card.address),
        ("signing key", card.signing_key.hex()),
        ("encryption key", card.encryption_key.hex()),
        ("rotated keys kept", str(len(identity.previous_encryption))),
    ):
        table.add_row(f"[bold]{name}[/bold]", value)
    console.print(table)


@keys_app.command("rotate")
@guarded
def keys_rotate(
    path: FileArg,
    node: NodeOpt = DEFAULT_NODE,
    password_env: PasswordEnvOpt = DEFAULT_PASSWORD_ENV,
) -> None:
    """Rotate this identity's keys on the chain; the address stays the same."""
    password = password_from(password_env)
    identity = load_identity(path, password)
    signing, encryption = SigningKey.generate(), EncryptionKey.generate()
    staged = path.with_name(path.name + ".rotating")
    save_identity(staged, identity.rotated(signing, encryption), password)
    try:
        with EhrClient(node) as client, console.status("rotating keys on the chain…"):
            Actor(identity, client).rotate_keys(signing, encryption)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    os.replace(staged, path)
    console.print(f"keys of [bold]{identity.address}[/bold] rotated; {path} updated")
