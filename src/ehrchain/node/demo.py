"""`ehrchain demo`: a node with a sample consortium, then serve until interrupted.

The sample data goes in through the SDK over HTTP exactly as real clients would:
two hospitals, their admins, verified providers, patients, records built from
HL7's official FHIR examples, a patient's own PDF, a grant and an audited read.
Every demo identity is saved as an encrypted keystore so the CLI can act as it.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ehrchain.client.actor import Actor
from ehrchain.client.http import EhrClient
from ehrchain.client.identity import new_identity, public_identity
from ehrchain.crypto.keystore import Identity, KdfParams, load_identity, save_identity
from ehrchain.ehr.examples import demo_examples
from ehrchain.ehr.values import Scope
from ehrchain.node.process import NodeProcess
from ehrchain.node.settings import KEY_DIR, NODE_KEY_FILE
from ehrchain.node.setup import ADMIN_KEY_FILE, init_node
from ehrchain.web.settings import WebSettings
from ehrchain.web.setup import add_web_account

DEMO_PASSWORD = "ehrchain-demo"  # noqa: S105 (sample consortium only; printed for the user)
IDENTITY_DIR = "identities"
MANIFEST = "demo-identities.json"
Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DemoUser:
    label: str
    role: str
    address: str
    key_file: str


def sample_pdf(title: str) -> bytes:
    """A small, valid one-page PDF with a synthetic title (no health data)."""
    text = f"BT /F1 18 Tf 72 720 Td ({title}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(text)).encode() + b" >>\nstream\n" + text + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


class _Population:
    """Creates the sample consortium through the SDK and records who is who."""

    def __init__(self, client: EhrClient, data_dir: Path, say: Say) -> None:
        self.client = client
        self.say = say
        self.dir = data_dir / IDENTITY_DIR
        self.dir.mkdir(exist_ok=True)
        self.users: list[DemoUser] = []
        self.identities: list[Identity] = []

    def keep(self, identity: Identity) -> Identity:
        path = self.dir / f"{identity.label}.key"
        save_identity(path, identity, DEMO_PASSWORD, KdfParams.FAST_FOR_TESTS)
        self.users.append(DemoUser(identity.label, identity.role, identity.address, str(path)))
        self.identities.append(identity)
        return identity

    def actor(self, label: str, role: str) -> Actor:
        return Actor(self.keep(new_identity(label, role)), self.client)

    def run(self, admin: Identity, validator: Identity) -> None:
        self.keep(admin)
        self.keep(validator)
        consortium, validators = Actor(admin, self.client), Actor(validator, self.client)
        hospitals = {}
        for hospital_id, name in (
            ("st-mary", "St Mary's Hospital"),
            ("riverside", "Riverside Clinic"),
        ):
            hadmin = self.actor(f"{hospital_id}-admin", "hospital_admin")
            consortium.admit_hospital(hospital_id, name, public_identity(hadmin.identity))
            hospitals[hospital_id] = hadmin
        self.say("admitted 2 hospitals")
        doctors = []
        for i, (hospital_id, licence) in enumerate(
            (
                ("st-mary", "NPI-1000000001"),
                ("st-mary", "NPI-1000000002"),
                ("riverside", "NPI-2000000001"),
            )
        ):
            doctor = self.actor(f"dr-{i + 1}-{hospital_id}", "provider")
            hospitals[hospital_id].register_provider(public_identity(doctor.identity), licence)
            validators.verify_provider(doctor.address)
            doctors.append(doctor)
        self.say("registered and verified 3 providers")
        patients = []
        for i, hospital_id in enumerate(("st-mary", "st-mary", "riverside")):
            patient = self.actor(f"patient-{i + 1}", "patient")
            hospitals[hospital_id].register_patient(public_identity(patient.identity))
            patients.append(patient)
        self.say("registered 3 patients")
        self._records(doctors, patients)

    def _records(self, doctors: list[Actor], patients: list[Actor]) -> None:
        examples = demo_examples()
        first, second = patients[0], patients[1]
        first.authorise(doctors[0].address)
        second.authorise(doctors[0].address)
        written = []
        for index, (_, resource) in enumerate(examples):
            patient = first if index % 2 == 0 else second
            record_id, _ = doctors[0].put_fhir(patient.address, resource, "R4B")
            written.append((patient, record_id))
        self.say(f"wrote {len(written)} records from HL7's FHIR examples")
        first.put_document(
            first.address, sample_pdf("Blood report (synthetic sample)"), "application/pdf"
        )
        first.grant(doctors[1].address, Scope(all=True))
        doctors[1].request_access(second.address)
        doctors[1].get(written[0][1])
        first.get(written[0][1])
        self.say("patient-1 uploaded a PDF and granted dr-2; dr-2 read a record (audited)")


def _write_manifest(data_dir: Path, users: list[DemoUser]) -> None:
    manifest = [dataclasses.asdict(u) for u in users]
    (data_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _web_accounts(data_dir: Path, identities: list[Identity]) -> None:
    """A browser login per demo identity: username = label, the demo password."""
    settings = WebSettings(data_dir=data_dir, keystore_kdf=KdfParams.FAST_FOR_TESTS)
    for identity in identities:
        hospital = identity.label.split("-admin")[0] if identity.role == "hospital_admin" else ""
        add_web_account(
            settings, identity.label, DEMO_PASSWORD, identity, identity.label, hospital=hospital
        )


def load_manifest(data_dir: Path) -> list[DemoUser]:
    return [DemoUser(**u) for u in json.loads((data_dir / MANIFEST).read_text())]


def prepare(data_dir: Path, port: int, say: Say) -> tuple[NodeProcess, list[DemoUser]]:
    """Initialise (first run only), start the node process and load the sample data."""
    fresh = not (data_dir / MANIFEST).exists()
    if fresh and data_dir.exists() and any(data_dir.iterdir()):
        raise FileExistsError(
            f"{data_dir} is not empty and holds no demo; choose another --data-dir"
        )
    if fresh:
        setup = init_node(data_dir, password=DEMO_PASSWORD, chain_id="ehrchain-demo", port=port)
        admin, validator = setup.admin, setup.validator
    process = NodeProcess(data_dir, port, DEMO_PASSWORD, data_dir / "node-process.log")
    process.start()
    if fresh:
        with EhrClient(process.url, timeout=60.0) as client:
            population = _Population(client, data_dir, say)
            population.run(admin, validator)
        _write_manifest(data_dir, population.users)
        _web_accounts(data_dir, population.identities)
    return process, load_manifest(data_dir)


def describe(process: NodeProcess, users: list[DemoUser], data_dir: Path) -> str:
    lines = [
        "",
        f"ehrchain demo is running at {process.url}",
        f"  web app (log in):   {process.url}/",
        f"  API documentation:  {process.url}/docs",
        f"  chain explorer API: {process.url}/chain?start=0&limit=10",
        f"  data directory:     {data_dir}",
        "",
        f"Demo logins — username below, password {DEMO_PASSWORD!r} for the web app and for",
        f"the keystores in {data_dir / IDENTITY_DIR}:",
    ]
    for user in users:
        lines.append(f"  {user.role:<17} {user.label:<18} {user.address}")
    patient = next(u for u in users if u.role == "patient")
    lines += [
        "",
        "Try:",
        f"  export EHRCHAIN_PASSWORD={DEMO_PASSWORD}",
        f"  .venv/bin/ehrchain history --node {process.url} --key {patient.key_file}",
        f"  .venv/bin/ehrchain verify --data-dir {data_dir}",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def run_demo(data_dir: Path, port: int, say: Say = print) -> None:
    """Start the demo and block until Ctrl-C or SIGTERM, then stop the node by its pid."""
    data_dir.mkdir(parents=True, exist_ok=True)
    process, users = prepare(data_dir, port, say)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        say(describe(process, users, data_dir))
        while not stop.is_set() and process.process is not None and process.process.poll() is None:
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        process.stop()


def node_identities(data_dir: Path, password: str) -> tuple[Identity, Identity]:
    """The admin and validator keystores init_node wrote (for tools that need them)."""
    keys = data_dir / KEY_DIR
    return load_identity(keys / ADMIN_KEY_FILE, password), load_identity(
        keys / NODE_KEY_FILE, password
    )
