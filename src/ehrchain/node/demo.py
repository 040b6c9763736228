"""`ehrchain demo`: a four-hospital BFT consortium with sample data, served until interrupted.

``network_up`` makes four node processes on ports P..P+3, all validators of one
chain (n = 4, so one may fail or lie); each of the four hospitals runs one. The
sample data goes in through the SDK over HTTP exactly as real clients would:
the hospitals and their admins, verified providers, patients, records built
from HL7's official FHIR examples, a patient's own PDF, a grant and an audited
read. Every demo identity is saved as an encrypted keystore so the CLI can act
as it, and has a web login on every node.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ehrchain.client.actor import Actor
from ehrchain.client.http import EhrClient
from ehrchain.client.identity import new_identity, public_identity
from ehrchain.crypto.keystore import Identity, KdfParams, load_identity, save_identity
from ehrchain.ehr.examples import demo_examples
from ehrchain.ehr.values import Scope
from ehrchain.node.network import Network, network_up, wait_converged
from ehrchain.node.process import NodeProcess
from ehrchain.node.settings import KEY_DIR, NODE_KEY_FILE
from ehrchain.node.setup import ADMIN_KEY_FILE
from ehrchain.web.settings import WebSettings
from ehrchain.web.setup import add_web_account

DEMO_PASSWORD = "ehrchain-demo"  # noqa: S105 (sample consortium only; printed for the user)
DEMO_CHAIN = "ehrchain-demo"
HOSPITALS: Final = (
    ("st-mary", "St Mary's Hospital"),
    ("riverside", "Riverside Clinic"),
    ("northgate", "Northgate General"),
    ("harbour", "Harbour Children's Hospital"),
)
"""One per node: hospital i runs node-i."""
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
        for hospital_id, name in HOSPITALS:
            hadmin = self.actor(f"{hospital_id}-admin", "hospital_admin")
            consortium.admit_hospital(hospital_id, name, public_identity(hadmin.identity))
            hospitals[hospital_id] = hadmin
        self.say(f"admitted {len(HOSPITALS)} hospitals")
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


def _web_accounts(node_dirs: list[Path], identities: list[Identity]) -> None:
    """A browser login per demo identity on every node: username = label, the demo password."""
    for node_dir in node_dirs:
        settings = WebSettings(data_dir=node_dir, keystore_kdf=KdfParams.FAST_FOR_TESTS)
        for identity in identities:
            hospital = ""
            if identity.role == "hospital_admin":
                hospital = identity.label.split("-admin")[0]
            add_web_account(
                settings, identity.label, DEMO_PASSWORD, identity, identity.label, hospital=hospital
            )


def load_manifest(data_dir: Path) -> list[DemoUser]:
    return [DemoUser(**u) for u in json.loads((data_dir / MANIFEST).read_text())]


def prepare(
    data_dir: Path, port: int, say: Say, *, kdf: KdfParams = KdfParams.DEFAULT
) -> tuple[Network, list[DemoUser]]:
    """Make the consortium (first run only), start its nodes and load the sample data."""
    fresh = not (data_dir / MANIFEST).exists()
    if fresh and data_dir.exists() and any(data_dir.iterdir()):
        raise FileExistsError(
            f"{data_dir} is not empty and holds no demo; choose another --data-dir"
        )
    network = network_up(
        data_dir,
        len(HOSPITALS),
        "bft",
        port,
        chain_id=DEMO_CHAIN,
        password=DEMO_PASSWORD,
        kdf=kdf,
        say=say,
    )
    try:
        if fresh:
            admin = load_identity(data_dir / ADMIN_KEY_FILE, DEMO_PASSWORD)
            validator = load_identity(data_dir / "node-0" / KEY_DIR / NODE_KEY_FILE, DEMO_PASSWORD)
            with EhrClient(network.urls[0], timeout=60.0) as client:
                population = _Population(client, data_dir, say)
                population.run(admin, validator)
            _web_accounts([p.data_dir for p in network.processes], population.identities)
            _write_manifest(data_dir, population.users)
            wait_converged(network.urls)
    except BaseException:
        network.stop()
        raise
    return network, load_manifest(data_dir)


def describe(network: Network, users: list[DemoUser], data_dir: Path) -> str:
    first = network.urls[0]
    lines = ["", f"ehrchain demo: {len(network.urls)} hospitals, one BFT validator node each"]
    for (hospital_id, name), url in zip(HOSPITALS, network.urls, strict=False):
        lines.append(f"  {name:<28} {url}/   ({hospital_id})")
    lines += [
        "",
        f"  web app (log in):   {first}/   (any node serves every login)",
        f"  API documentation:  {first}/docs",
        f"  chain explorer API: {first}/chain?start=0&limit=10",
        f"  data directory:     {data_dir}",
        "",
        f"Demo logins — username below, password {DEMO_PASSWORD!r} for the web app and for",
        f"the keystores in {data_dir / IDENTITY_DIR}:",
    ]
    for user in users:
        lines.append(f"  {user.role:<17} {user.label:<22} {user.address}")
    patient = next(u for u in users if u.role == "patient")
    lines += [
        "",
        "Try:",
        f"  export EHRCHAIN_PASSWORD={DEMO_PASSWORD}",
        f"  .venv/bin/ehrchain status --node {first}",
        f"  .venv/bin/ehrchain history --node {network.urls[-1]} --key {patient.key_file}",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def run_demo(data_dir: Path, port: int, say: Say = print) -> None:
    """Start the demo and block until Ctrl-C or SIGTERM, then stop every node by its pid."""
    data_dir.mkdir(parents=True, exist_ok=True)
    network, users = prepare(data_dir, port, say)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        say(describe(network, users, data_dir))
        while not stop.is_set() and all(_running(p) for p in network.processes):
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        network.stop()


def _running(process: NodeProcess) -> bool:
    return process.process is not None and process.process.poll() is None
