"""The web UI against a consortium: two real nodes of one chain, each serving the pages.

A is the chain's one validator (embedded engine), B a follower made from A's
genesis and admitted on-chain as hospital B's node. Every node mounts the web
UI, and web accounts live per data directory, so each person signs in at the
node of their hospital: the provider at A, the patient at B.

The story: at A, the consortium admin admits a hospital whose admin registers a
doctor, and the validator verifies the doctor. At B, hospital B's admin
registers a patient, who uploads a document and grants the doctor access (B's
web submits; B forwards to A, which seals). At A, the doctor opens the record
(the blob was stored at B; the audit read is sealed at A). At B, the patient
sees the read arrive live and in the history. Names come from the node's own
web accounts, so B shows the doctor by address.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from webtest import User, flash_ok

from ehrchain.crypto.keystore import Identity, KdfParams
from ehrchain.web import FAST_PASSWORD_COST, WebSettings
from ehrchain.web.render import short
from ehrchain.web.setup import add_web_account
from network_nodes import PASSWORD, Pair, make_pair, register_with, wait_same_head

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPORT = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def operator_account(
    data_dir: Path, username: str, identity: Identity, name: str, hospital: str = ""
) -> None:
    """A web account for a key the operator holds (as ``ehrchain demo`` makes them)."""
    settings = WebSettings(
        data_dir=data_dir, password_cost=FAST_PASSWORD_COST, keystore_kdf=KdfParams.FAST_FOR_TESTS
    )
    add_web_account(settings, username, PASSWORD, identity, name, hospital=hospital)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """A and B running, B admitted and registered with A, both at one head."""
    made = make_pair(tmp_path)
    operator_account(made.a.data_dir, "admin", made.admin, "Consortium Admin")
    operator_account(made.a.data_dir, "validator", made.validator, "Validator A")
    operator_account(made.b.data_dir, "hb-admin", made.b_key, "Bea Admin", "hospital-b")
    try:
        made.a.start()
        made.b.start()
        made.admit_b()
        joined = register_with(made.b.url, made.a.url)
        assert joined.status_code == 200, joined.text
        wait_same_head([made.a.url, made.b.url])
        yield made
    finally:
        made.stop()
        print(f"--- A ---\n{made.a.log_tail()}\n--- B ---\n{made.b.log_tail()}")  # shown on failure


@pytest.fixture
def people() -> Iterator[dict[str, User]]:
    made: dict[str, User] = {}
    yield made
    for user in made.values():
        user.close()


def register(user: User, role: str, name: str, username: str, licence: str = "") -> None:
    user.page.goto("/hospital")
    form = user.page.locator("form[data-test=register]")
    form.locator("select[name=role]").select_option(role)
    form.locator("input[name=display_name]").fill(name)
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(f"{username}-initial-1")
    form.locator("input[name=licence]").fill(licence)
    form.locator("button[type=submit]").click()
    flash_ok(user.page, f"{name} registered")


def address_of(user: User) -> str:
    user.page.goto("/profile")
    return user.page.locator("[data-test=address]").inner_text()


def test_patient_at_follower_provider_at_validator(
    browser: Browser, pair: Pair, people: dict[str, User], tmp_path: Path
) -> None:
    at_a, at_b = pair.a.url, pair.b.url

    # At A: a hospital is admitted, its admin registers a doctor, the validator verifies him.
    admin = people["admin"] = User(browser, at_a, "admin", PASSWORD)
    admin.login()
    admit = admin.page.locator("form[data-test=admit]")
    admit.locator("[name=hospital_id]").fill("general")
    admit.locator("[name=name]").fill("General Hospital")
    admit.locator("[name=display_name]").fill("Hana Admin")
    admit.locator("[name=username]").fill("hana")
    admit.locator("[name=password]").fill("hana-initial-1")
    admit.locator("button[type=submit]").click()
    flash_ok(admin.page, "Hospital General Hospital admitted")
    hana = people["hana"] = User(browser, at_a, "hana", "hana-initial-1")
    hana.login(expect_change=True)
    register(hana, "provider", "Dr Daniel Okafor", "daniel", "NPI-7654321")
    validator = people["validator"] = User(browser, at_a, "validator", PASSWORD)
    validator.login()
    row = validator.page.locator("table[data-test=providers] tr", has_text="Dr Daniel Okafor")
    row.locator("[data-test=verify]").click()
    flash_ok(validator.page, "is verified")
    daniel = people["daniel"] = User(browser, at_a, "daniel", "daniel-initial-1")
    daniel.login(expect_change=True)
    doctor = address_of(daniel)

    # At B: hospital B's admin registers a patient, who uploads a report and grants the doctor.
    bea = people["bea"] = User(browser, at_b, "hb-admin", PASSWORD)
    bea.login()
    expect(bea.page).to_have_url(re.compile(r"/hospital$"))
    register(bea, "patient", "Priya Patel", "priya")
    priya = people["priya"] = User(browser, at_b, "priya", "priya-initial-1")
    priya.login(expect_change=True)
    patient = address_of(priya)
    priya.page.goto("/records")
    report = tmp_path / "report.pdf"
    report.write_bytes(REPORT)
    priya.page.set_input_files("input[name=file]", str(report))
    priya.page.select_option("select[name=category]", "laboratory")
    priya.page.click("form[action='/records'] button[type=submit]")
    flash_ok(priya.page, "Uploaded and encrypted as record")
    record_id = priya.page.url.rsplit("/", 1)[1]
    assert re.fullmatch(r"r[0-9a-f]{32}", record_id)
    priya.shot("consortium-b-patient-record")
    priya.page.goto("/access")
    grant = priya.page.locator("form[data-test=grant-form]")
    grant.locator("input[name=grantee]").fill(doctor)
    grant.locator("button[type=submit]").click()
    flash_ok(priya.page, f"Access granted to {short(doctor)}")
    expect(priya.page.locator("table[data-test=grants]")).to_contain_text("active")

    # At A: the doctor finds the patient by address and opens the report; B sees the read live.
    priya.page.goto("/history")
    priya.wait_live()
    daniel.page.goto("/patients")
    daniel.page.fill("input[name=who]", patient)
    daniel.page.click("form[action='/patients/find'] button")
    expect(daniel.page).to_have_url(re.compile(f"/patients/{patient}$"))
    expect(daniel.page.locator("[data-test=access-status]")).to_contain_text("granted")
    daniel.page.click(f"[data-test=open-{record_id}]")
    expect(daniel.page.locator("[data-test=opened] iframe.doc")).to_be_visible()
    daniel.shot("consortium-a-provider-opened")
    expect(
        priya.page.locator("[data-test=toast]", has_text=f"opened record {record_id}")
    ).to_be_visible()
    priya.page.reload()
    reads = priya.page.locator("table[data-test=history] tr", has_text="opened a record")
    expect(reads.filter(has_text=short(doctor)).filter(has_text=record_id[:9])).to_have_count(1)
    priya.shot("consortium-b-patient-history")

    # Both nodes end on one head: every write went through A's blocks.
    wait_same_head([at_a, at_b])
