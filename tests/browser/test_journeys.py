"""Each role's main journey, end to end, in a real browser against a real node.

One story, in order: the consortium admin admits a hospital; its admin
registers a patient and a provider; a validator verifies the provider; the
patient uploads a blood report; the provider, without a grant, is refused,
asks, and is granted; the provider reads it and the patient sees the read live
and in the history; the provider writes an Observation; the patient revokes
and amends, and the provider cannot open the new version; the patient checks an
event's inclusion proof in the browser; the provider breaks the glass, the
hospital delivers the keys and the provider can read again.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from webtest import NODE_PASSWORD, ROOT, User, WebNode, flash_error, flash_ok

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BLOOD_REPORT = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


@pytest.fixture
def people(browser: Browser, web_node: WebNode) -> Iterator[dict[str, User]]:
    made: dict[str, User] = {}
    yield made
    for user in made.values():
        user.close()


def register(
    user: User, role: str, name: str, username: str, password: str, licence: str = ""
) -> None:
    form = user.page.locator("form[data-test=register]")
    form.locator("select[name=role]").select_option(role)
    form.locator("input[name=display_name]").fill(name)
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(password)
    form.locator("input[name=licence]").fill(licence)
    form.locator("button[type=submit]").click()
    flash_ok(user.page, f"{name} registered")


def test_every_role_end_to_end(
    browser: Browser, web_node: WebNode, people: dict[str, User], tmp_path: Path
) -> None:
    url = web_node.url

    # Consortium admin admits a hospital.
    admin = people["admin"] = User(browser, url, "admin", NODE_PASSWORD)
    admin.login()
    expect(admin.page).to_have_url(re.compile(r"/consortium$"))
    admit = admin.page.locator("form[data-test=admit]")
    admit.locator("[name=hospital_id]").fill("general")
    admit.locator("[name=name]").fill("General Hospital")
    admit.locator("[name=display_name]").fill("Hana Admin")
    admit.locator("[name=username]").fill("hana")
    admit.locator("[name=password]").fill("hana-initial-1")
    admit.locator("button[type=submit]").click()
    flash_ok(admin.page, "Hospital General Hospital admitted")
    expect(admin.page.locator("table[data-test=hospitals]")).to_contain_text("Hana Admin")
    admin.shot("consortium")

    # The hospital admin must choose a password, then registers a patient and a doctor.
    hana = people["hana"] = User(browser, url, "hana", "hana-initial-1")
    hana.login(expect_change=True)
    hana.page.goto("/hospital")
    register(hana, "patient", "Priya Patel", "priya", "priya-initial-1")
    register(hana, "provider", "Dr Daniel Okafor", "daniel", "daniel-initial-1", "NPI-1234567")
    expect(hana.page.locator("table[data-test=people]")).to_contain_text("awaiting verification")
    hana.shot("hospital")

    # A validator verifies the doctor's licence.
    validator = people["validator"] = User(browser, url, "validator", NODE_PASSWORD)
    validator.login()
    row = validator.page.locator("table[data-test=providers] tr", has_text="Dr Daniel Okafor")
    row.locator("[data-test=verify]").click()
    flash_ok(validator.page, "is verified")

    # The patient uploads a blood report (seed 001).
    priya = people["priya"] = User(browser, url, "priya", "priya-initial-1")
    priya.login(expect_change=True)
    priya.page.goto("/records")
    report = tmp_path / "blood-report.pdf"
    report.write_bytes(BLOOD_REPORT)
    priya.page.set_input_files("input[name=file]", str(report))
    priya.page.select_option("select[name=category]", "laboratory")
    priya.page.click("form[action='/records'] button[type=submit]")
    flash_ok(priya.page, "Uploaded and encrypted as record")
    record_id = priya.page.url.rsplit("/", 1)[1]
    assert re.fullmatch(r"r[0-9a-f]{32}", record_id)
    priya.page.goto("/profile")
    patient_address = priya.page.locator("[data-test=address]").inner_text()

    # The doctor, without a grant, is refused.
    daniel = people["daniel"] = User(browser, url, "daniel", "daniel-initial-1")
    daniel.login(expect_change=True)
    daniel.page.goto("/patients")
    daniel.page.fill("input[name=who]", "priya")
    daniel.page.click("form[action='/patients/find'] button")
    expect(daniel.page).to_have_url(re.compile(f"/patients/{patient_address}$"))
    expect(daniel.page.locator("[data-test=access-status]")).to_contain_text("no access")
    daniel.page.click(f"[data-test=open-{record_id}]")
    flash_error(daniel.page, "You have no access to this record")

    # The doctor asks; the patient is told live and approves.
    priya.page.goto("/access")
    priya.wait_live()
    daniel.page.click("form[action$='/request'] button[type=submit]")
    flash_ok(daniel.page, "Access requested")
    expect(priya.page.locator("[data-test=toast]", has_text="asks for access")).to_be_visible()
    priya.page.reload()
    priya.page.click("[data-test=approve]")
    flash_ok(priya.page, "approved")
    consent = priya.page.locator("form[action='/access/consent']")
    consent.locator("input[name=provider]").fill("daniel")
    consent.locator("button[value=yes]").click()
    flash_ok(priya.page, "may now add records")

    # The doctor reads the report; the patient sees the read arrive live.
    priya.page.goto("/history")
    priya.wait_live()
    daniel.page.goto(f"/patients/{patient_address}")
    expect(daniel.page.locator("[data-test=access-status]")).to_contain_text("granted")
    daniel.page.click(f"[data-test=open-{record_id}]")
    expect(daniel.page.locator("[data-test=opened] iframe.doc")).to_be_visible()
    expect(
        priya.page.locator("[data-test=toast]", has_text=f"opened record {record_id}")
    ).to_be_visible()
    priya.page.reload()
    history = priya.page.locator("table[data-test=history]")
    expect(
        history.locator("tr", has_text="Dr Daniel Okafor").filter(has_text="opened a record")
    ).to_have_count(1)

    # The doctor writes an Observation with the form and opens it readably.
    daniel.page.goto(f"/patients/{patient_address}")
    form = daniel.page.locator("form[data-test=new-record]")
    form.locator("select[name=resource_type]").select_option("Observation")
    form.locator("input[name=code_text]").fill("Haemoglobin")
    form.locator("input[name=code]").fill("718-7")
    form.locator("input[name=value]").fill("13.2")
    form.locator("input[name=unit]").fill("g/dL")
    form.locator("input[name=date]").fill("2025-03-14")
    form.locator("button[type=submit]").click()
    flash_ok(daniel.page, "Saved as record")
    observation_id = re.search(
        r"record (r[0-9a-f]{32})", daniel.page.locator(".flash.ok").inner_text()
    )
    assert observation_id is not None
    daniel.shot("provider-chart")
    shutil.copy(daniel.shot("provider-chart"), _docs_img("provider.png"))
    daniel.page.click(f"[data-test=open-{observation_id.group(1)}]")
    expect(daniel.page.locator("[data-test=headline]")).to_have_text("13.2 g/dL")
    expect(daniel.page.locator("h1")).to_contain_text("Haemoglobin")
    daniel.shot("provider-observation")

    priya.page.goto("/history")
    priya.shot("patient-history")
    shutil.copy(priya.shot("patient-history"), _docs_img("patient.png"))

    # The patient revokes, then saves a new version of the report.
    priya.page.goto("/access")
    priya.page.locator("table[data-test=grants] [data-test=revoke]").click()
    flash_ok(priya.page, "revoked")
    priya.page.goto(f"/records/{record_id}")
    priya.page.locator("form[action$='/open'] button").first.click()
    expect(priya.page.locator("[data-test=opened]")).to_be_visible()
    priya.shot("patient-record")
    priya.page.locator("details.amend summary").click()
    priya.page.set_input_files("details.amend input[name=file]", str(report))
    priya.page.click("details.amend button[type=submit]")
    flash_ok(priya.page, "Saved version 2")

    # The doctor can no longer open the new version.
    daniel.page.goto(f"/records/{record_id}")
    daniel.page.locator("tr", has_text="application/pdf").first.locator("form button").click()
    flash_error(daniel.page, "You have no access to this record")

    # The patient checks an event's inclusion proof in the browser.
    priya.page.goto("/history")
    priya.page.locator("table[data-test=history] a", has_text="verify").first.click()
    expect(priya.page.locator("[data-test=verdict]")).to_have_attribute("data-result", "pass")
    expect(priya.page.locator("[data-test=checks] li.fail")).to_have_count(0)
    priya.shot("verify")

    # Break-glass: the doctor states a reason; patient and hospital are alerted; keys are delivered.
    priya.page.goto("/history")
    priya.wait_live()
    hana.page.goto("/hospital")
    daniel.page.goto(f"/patients/{patient_address}")
    glass = daniel.page.locator("form[data-test=break-glass]")
    glass.locator("select[name=reason_code]").select_option("unconscious")
    glass.locator("textarea[name=reason]").fill(
        "Unconscious in the emergency room; need allergy history"
    )
    glass.locator("button[type=submit]").click()
    flash_ok(daniel.page, "Emergency access recorded")
    expect(priya.page.locator("[data-test=toast]", has_text="Emergency access")).to_be_visible()
    priya.page.reload()
    expect(priya.page.locator("table[data-test=history]")).to_contain_text(
        "Unconscious in the emergency room"
    )
    hana.page.reload()
    hana.page.locator("button", has_text="Deliver keys").click()
    flash_ok(hana.page, "Emergency keys delivered")
    daniel.page.goto(f"/records/{record_id}")
    daniel.page.locator("form[action$='/open'] button").first.click()
    expect(daniel.page.locator("[data-test=opened] iframe.doc")).to_be_visible()


def _docs_img(name: str) -> Path:
    """README screenshots: refreshed only when EHRCHAIN_UPDATE_SCREENSHOTS is set, so a
    test run leaves the checkout clean; otherwise they go with the other artifacts."""
    if os.environ.get("EHRCHAIN_UPDATE_SCREENSHOTS"):
        folder = ROOT / "docs" / "img"
    else:
        folder = ROOT / "test-artifacts" / "screenshots" / "readme"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def test_explorer_shows_every_header_field(browser: Browser, web_node: WebNode) -> None:
    visitor = User(browser, web_node.url, "", "")
    try:
        visitor.page.goto("/explorer")
        expect(visitor.page.locator("table[data-test=blocks] tr").first).to_be_visible()
        visitor.page.goto("/explorer/blocks/0")
        header = visitor.page.locator("[data-test=header]")
        for field in (
            "hash",
            "magic",
            "version",
            "chain_id",
            "size",
            "tx_count",
            "height",
            "prev_hash",
            "tx_root",
            "timestamp_ms",
            "target",
            "nonce",
            "state_root",
            "proposer",
        ):
            expect(header.locator("dt", has_text=re.compile(f"^{field}$"))).to_have_count(1)
        visitor.shot("explorer-block")
        visitor.page.goto("/explorer/search?q=999999")
        expect(visitor.page.locator(".flash.error")).to_contain_text("there is no block 999999")
    finally:
        visitor.close()
