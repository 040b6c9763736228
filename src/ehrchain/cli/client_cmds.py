"""Client commands: act on a node with your own keystore (``--node URL --key FILE``).

Everything is built, encrypted and signed on this machine through the SDK's
``Actor``; the node only ever sees signed transactions and ciphertext.
Identities to register are given as public cards (``ehrchain keys show --json``).
"""

from __future__ import annotations

import json
import mimetypes
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ehrchain.cli.common import (
    DEFAULT_NODE,
    DEFAULT_PASSWORD_ENV,
    KeyOpt,
    NodeOpt,
    PasswordEnvOpt,
    connect,
    console,
    fail,
    guarded,
)
from ehrchain.client import PublicIdentity, Scope

__all__ = ["record_app", "register_app", "register_commands"]

register_app = typer.Typer(help="Register patients and providers (hospital admins).")
record_app = typer.Typer(help="Write and read encrypted records.", no_args_is_help=True)

CardArg = Annotated[Path, typer.Argument(help="Public card JSON (keys show --json).")]
AddressArg = Annotated[str, typer.Argument(help="An ehr1… address.")]


def _card(path: Path) -> PublicIdentity:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ValueError(f"{path} is not a JSON public card") from None
    return PublicIdentity.from_json(data)


@register_app.command("patient")
@guarded
def register_patient(
    card: CardArg,
    key: KeyOpt,
    node: NodeOpt = DEFAULT_NODE,
    password_env: PasswordEnvOpt = DEFAULT_PASSWORD_ENV,
) -> None:
    """Register a patient of your hospital."""
    with connect(node, key, password_env) as actor:
        address = actor.register_patient(_card(card))
    console.print(f"patient [bold]{address}[/bold] registered")


@register_app.command("provider")
@guarded
def register_provider(
    card: CardArg,
    licence: Annotated[str, typer.Option("--licence", help="Licence number (NPI, UPIN…).")],
    key: KeyOpt,
    node: NodeOpt = DEFAULT_NODE,
    password_env: PasswordEnvOpt = DEFAULT_PASSWORD_ENV,
) -> None:
    """Register a provider of your hospital with a unique licence number."""
    with connect(node, key, password_env) as actor:
        address = actor.register_provider(_card(card), licence)
    console.print(f"provider [bold]{address}[/bold] registered")


@record_app.command("put")
@guarded
def record_put(
    file: Annotated[Path, typer.Argument(help="FHIR JSON, or a PDF / PNG / JPEG document.")],
    key: KeyOpt,
    patient: Annotated[str | None, typer.Option(help="Patient address (default: you).")] = None,
    fhir_version: Annotated[str, typer.Option("--fhir-version")] = "R4",
    media_type: Annotated[
        str | None, typer.Option("--media-type", help="Document type (default: from the name).")
    ] = None,
    node: NodeOpt = DEFAULT_NODE,
    password_env: PasswordEnvOpt = DEFAULT_PASSWORD_ENV,
) -> None:
    """Encrypt a record for exactly its readers, upload it and create it on the chain."""
    data = file.read_bytes()
    with connect(node, key, password_env) as actor, console.status("sealing and committing…"):
        owner = patient or actor.address
        if file.suffix.lower() == ".json":
            record_id, version = actor.put_fhir(owner, data, fhir_version)
        else:
            kind = media_type or mimetypes.guess_type(file.name)[0] or ""
            record_id, version = actor.put_document(owner, data, kind)
    console.print(f"record [bold]{record_id}[/bold] version {version} committed")


@record_app.command("amend")
@guarded
def record_amend(
    record_id: Annotated[str, typer.Argument()],
    file: Annotated[Path, typer.Argument(help="The new version's content.")],
    key: KeyOpt,
    node: NodeOpt = DEFAULT_NODE,
    password_env: PasswordEnvOpt = DEFAULT_PASSWORD_ENV,
) -> None:
    """Write the next version of a record."""
    data = file.read_bytes()
    with connect(node, key, password_env) as actor, console.status("sealing and committing…"):
        version = actor.amend(record_id, data)
    console.print(f"record [bold]{record_id}[/bold] version {version} committed")


@record_app.command("get")
@guarded
def record_get(
    record_id: Annotated[str, typer.Argument()],
    key: KeyOpt,
    version: Annotated[int | None, typer.Option("--version", min=1)] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write here, not stdout.")] = None,
    node: NodeOpt = DEFAULT_NODE,
    password_env: PasswordEnvOpt = DEFAULT_PASSWORD_ENV,
) -> None:
    """Read a record: a signed, audited read, decrypted and checked on this machine."""
    with connect(node, key, password_env) as actor:
        content = actor.get(record_id, version)
    if out is None:
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
    else:
        out.write_bytes(content)
        console.print(f"{len(content)} bytes written to {out}")


def grant(
    grantee: AddressArg,
    key: KeyOpt,
    all_records: Annotated[bool, typer.Option("--all", help="Everything.")] = False,
    category: Annotated[list[str] | None, typer.Option("--category", help="Repeatable.")] = None,
    record: Annotated[list[str] | None, typer.Option("--record", help="Repeatable.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO 8601 expiry.")] = None,
    patient: Annotated[str | None, typer.Option(help="Act for this patient (delegate).")] = None,
    node: NodeOpt = DEFAULT_NODE,
    password_env: PasswordEnvOpt = DEFAULT_PASSWORD_ENV,
) -> None:
    """Grant access: re-wraps every covered version's key for the grantee."""
    scope = _scope(all_records, category or [], record or [])
    expires_ms = _epoch_ms(until) if until else 0
    with connect(node, key, password_env) as actor, console.status("re-wrapping keys…"):
        sent = actor.grant(grantee, scope, expires_ms, patient=patient)
    console.print(f"granted to [bold]{grantee}[/bold] in {len(sent)} transaction(s)")


def _scope(all_records: bool, categories: list[str], records: list[str]) -> Scope:
    chosen = sum((all_records, bool(categories), bool(records)))
    if chosen != 1:
        raise fail("choose exactly one of --all, --category, --record", 2)
    if all_records:
        return Scope(all=True)
    if categories:
        return Scope(categories=frozenset(categories))
    return Scope(records=frozenset(records))


def _epoch_ms(text: str) -> int:
    """Milliseconds since the epoch; a time without a zone is taken as UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def revoke(
    grantee: AddressArg,
    key: KeyOpt,
    patient: Annotated[str | None, typer.Option(help="Act for this patient (delegate).")] = None,
    node: NodeOpt = DEFAULT_NODE,
    password_env: PasswordEnvOpt = DEFAULT_PASSWORD_ENV,
) -> None:
    """Revoke a grant; versions written from now on use keys the grantee never gets."""
    with connect(node, key, password_env) as actor:
        actor.revoke(grantee, patient=patient)
    console.print(f"access of [bold]{grantee}[/bold] revoked")


def history(
    key: KeyOpt,
    patient: Annotated[str | None, typer.Argument(help="Patient (default: you).")] = None,
    node: NodeOpt = DEFAULT_NODE,
    password_env: PasswordEnvOpt = DEFAULT_PASSWORD_ENV,
) -> None:
    """Who did what to a patient's file, and when (newest first)."""
    with connect(node, key, password_env) as actor:
        events = actor.history(patient)
    table = Table("time (UTC)", "event", "actor", "record", "version", "block")
    for column in table.columns:
        column.overflow = "fold"
    for e in events:
        when = datetime.fromtimestamp(int(e["timestamp_ms"]) / 1000, UTC)
        table.add_row(
            when.strftime("%Y-%m-%d %H:%M:%S"),
            str(e["kind"]),
            str(e["actor"]),
            str(e.get("record_id") or "-"),
            str(e.get("version") or "-"),
            str(e["height"]),
        )
    console.print(table)


def admit_hospital(
    hospital_id: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument()],
    admin_card: CardArg,
    key: KeyOpt,
    node: NodeOpt = DEFAULT_NODE,
    password_env: PasswordEnvOpt = DEFAULT_PASSWORD_ENV,
) -> None:
    """Admit a hospital and its admin (consortium admin)."""
    with connect(node, key, password_env) as actor:
        actor.admit_hospital(hospital_id, name, _card(admin_card))
    console.print(f"hospital [bold]{hospital_id}[/bold] admitted")


def break_glass(
    patient: AddressArg,
    key: KeyOpt,
    reason_code: Annotated[
        str, typer.Option("--reason-code", help="unconscious, life-threatening or other.")
    ],
    reason_file: Annotated[
        Path | None, typer.Option("--reason-file", help="Reason text (else asked for).")
    ] = None,
    node: NodeOpt = DEFAULT_NODE,
    password_env: PasswordEnvOpt = DEFAULT_PASSWORD_ENV,
) -> None:
    """Emergency access; the reason is encrypted to the patient and the event is audited."""
    if reason_file is not None:
        reason = reason_file.read_text().strip()
    else:
        reason = str(typer.prompt("Reason (readable by the patient only)"))
    with connect(node, key, password_env) as actor:
        actor.break_glass(patient, reason_code, reason)
    console.print(f"emergency access to [bold]{patient}[/bold] recorded; the patient is notified")


def emergency_rewrap(
    patient: AddressArg,
    provider: AddressArg,
    key: KeyOpt,
    node: NodeOpt = DEFAULT_NODE,
    password_env: PasswordEnvOpt = DEFAULT_PASSWORD_ENV,
) -> None:
    """As custodian, re-wrap a patient's keys for a provider with emergency access."""
    with connect(node, key, password_env) as actor, console.status("re-wrapping keys…"):
        sent = actor.emergency_rewrap(patient, provider)
    console.print(f"re-wrapped for [bold]{provider}[/bold] in {len(sent)} transaction(s)")


def _simple(method: str, done: str, help_text: str) -> Any:
    """A command that calls one Actor method with one address."""

    def command(
        address: AddressArg,
        key: KeyOpt,
        node: NodeOpt = DEFAULT_NODE,
        password_env: PasswordEnvOpt = DEFAULT_PASSWORD_ENV,
    ) -> None:
        with connect(node, key, password_env) as actor:
            getattr(actor, method)(address)
        console.print(f"{done} [bold]{address}[/bold]")

    command.__doc__ = help_text
    return command


def register_commands(app: typer.Typer) -> None:
    """Attach the client commands to the top-level app."""
    app.add_typer(register_app, name="register")
    app.add_typer(record_app, name="record")
    app.command("grant")(guarded(grant))
    app.command("revoke")(guarded(revoke))
    app.command("history")(guarded(history))
    app.command("admit-hospital")(guarded(admit_hospital))
    app.command("break-glass")(guarded(break_glass))
    app.command("emergency-rewrap")(guarded(emergency_rewrap))
    for name, method, done, help_text in (
        ("authorise", "authorise", "authorised", "Let a provider create your records (patients)."),
        ("verify-provider", "verify_provider", "verified", "Verify a provider (validators)."),
        (
            "request-access",
            "request_access",
            "access requested from",
            "Ask a patient for access to all records (providers).",
        ),
        (
            "delegate",
            "delegate",
            "delegated to",
            "Make a caregiver your delegate; re-wraps your keys for them (patients).",
        ),
    ):
        app.command(name)(guarded(_simple(method, done, help_text)))
