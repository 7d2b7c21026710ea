"""The demo portal's ops page in a real Chromium: an operator finds an appointment and opens it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.e2e.browser_helpers import CHROMIUM, CHROMIUM_ARGS, DESKTOP, screenshot_path
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.browser
PHONE = "+358401234567"
# Unique: other tests count the mails the shared stack sent to their own address.
EMAIL = f"ops-{uuid.uuid4().hex[:8]}@example.fi"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_an_operator_finds_a_day_and_opens_one_appointment(browser: Browser, stack: Stack) -> None:
    """With the function key: the day's booked appointments, then one with its Durable state, in Finnish."""
    booked = stack.book(f"opspage-{uuid.uuid4().hex[:8]}", email=EMAIL)
    code = booked["bookingCode"]
    context = browser.new_context(viewport=DESKTOP, locale="fi-FI")
    page = context.new_page()
    page.goto(f"{stack.host.base_url}/portal/ops.html")
    page.get_by_label("Funktioavain").fill("wrong-key")
    page.get_by_role("button", name="Hae").click()
    expect(page.get_by_role("status")).to_have_text("Funktioavain puuttuu tai on väärä.")

    page.get_by_label("Funktioavain").fill(stack.host.function_key)
    page.get_by_label("Päivä").fill(booked["start"][:10])
    page.get_by_label("Vaihe").select_option("booked")
    page.get_by_role("button", name="Hae").click()
    expect(page.get_by_role("button", name=code)).to_be_visible()
    page.get_by_role("button", name=code).click()
    detail = page.locator("#detail")
    expect(detail).to_contain_text(f"appt-{code}")
    expect(detail).to_contain_text("Running")
    expect(detail).to_contain_text("Kunnossa")
    assert PHONE not in page.content() and EMAIL not in page.content()
    page.screenshot(path=str(screenshot_path("ops-detail")))
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Appointments")
    context.close()
