"""The demo portal in a real Chromium against the whole stack: a customer books, starts and joins
an online meeting, the expert sees them in the lobby and issues a code, the customer confirms it.

Customer pages run at phone width (360 px), the expert console at desktop width; screenshots of
the key steps land in ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from appointments.localtime import HELSINKI, format_datetime
from tests.e2e.browser_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    screenshot_path,
)
from tests.e2e.conftest import MAIJA, MATLEENA, OLLI, Stack

pytestmark = pytest.mark.browser
expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def portal_url(stack: Stack) -> str:
    """The devhost serves the demo portal itself (DEVHOST_PORTAL=1 in the stack)."""
    return f"{stack.host.base_url}/portal/"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_portal(
    browser: Browser,
    url: str,
    *,
    customer: str | None = None,
    expert: str | None = None,
    viewport: dict[str, int] = PHONE,
    hash_: str = "#/",
) -> tuple[BrowserContext, Page]:
    """A fresh context signed in through the dev login (stored like the login bar stores it)."""
    context = browser.new_context(viewport=viewport, locale="fi-FI")
    who = (
        {"kind": "expert", "id": expert}
        if expert
        else {"kind": "customer", "id": customer or "demo-customer"}
    )
    context.add_init_script(f"localStorage.setItem('portal.who', {json.dumps(json.dumps(who))})")
    page = context.new_page()
    page.goto(url + hash_)
    expect(page.locator("body[data-ready=true]")).to_be_attached()
    return context, page


def book_soon(stack: Stack, customer: str, *, expert: str, topic: str, duration: int = 30) -> dict[str, Any]:
    """Book the first free grid start in working hours (weekdays 09–16 Helsinki) at least
    2 h 15 min ahead, so the join window is a short clock advance away."""
    t = stack.now() + timedelta(hours=2, minutes=15)
    t = t.replace(second=0, microsecond=0) + timedelta(minutes=(30 - t.minute % 30) % 30)
    for _ in range(48 * 14):
        local = t.astimezone(HELSINKI)
        end = local + timedelta(minutes=duration)
        working = local.weekday() < 5 and local.hour >= 9 and (end.hour, end.minute) <= (16, 0)
        if working and end.date() == local.date():
            body = {
                "expertId": expert,
                "topic": topic,
                "channel": "online",
                "start": t.isoformat(),
                "durationMinutes": duration,
                "language": "fi",
                "phone": "+358401234567",
            }
            r = stack.as_customer(customer, "POST", "/api/appointments", json=body)
            if r.status_code != 409:
                assert r.status_code == 201, r.text
                stack.host.wait_idle()
                return dict(r.json())
        t += timedelta(minutes=30)
    raise AssertionError("no free working-hours slot in two weeks")


def advance_to_join_window(stack: Stack, start: datetime) -> None:
    stack.host.advance((start - timedelta(minutes=15) - stack.now()).total_seconds())


def start_of(stack: Stack, customer: str, code: str) -> datetime:
    view = stack.as_customer(customer, "GET", f"/api/appointments/{code}").json()
    return datetime.fromisoformat(view["start"].replace("Z", "+00:00"))


def book_in_browser(page: Page) -> str:
    """Fill the booking form with Matleena; the first free slot that is still free wins."""
    page.get_by_role("link", name="Varaa aika").click()
    expect(page.get_by_role("heading", name="Varaa aika", level=1)).to_be_visible()
    page.get_by_label("Verkkoneuvottelu").check()
    page.get_by_label("Aihe").select_option("loans.home-loan")
    page.get_by_label("Neuvottelun kieli").select_option("fi")
    expert = page.get_by_label("Asiantuntija")
    expect(expert.locator(f"option[value='{MATLEENA.expert_id}']")).to_be_attached()
    expert.select_option(MATLEENA.expert_id)
    page.get_by_label("Kesto").select_option("30")
    page.get_by_label("Puhelinnumero").fill("+358401234567")
    page.get_by_label("Sähköposti (vapaaehtoinen)").fill("asiakas@example.com")
    slots = page.locator(".slots input[name=slot]")
    expect(slots.first).to_be_attached()
    page.screenshot(path=screenshot_path("01-booking-form-360"), full_page=True)
    for i in range(min(6, slots.count())):
        slots.nth(i).check()
        page.get_by_role("button", name="Varaa aika").click()
        outcome = page.locator("[data-testid=flash]:not([hidden]), [data-testid=book-msg]:not([hidden])")
        expect(outcome).to_be_visible()
        if page.get_by_test_id("flash").is_visible():
            break
        expect(slots.first).to_be_attached()  # taken meanwhile: the form reloaded its slots
    flash = page.get_by_test_id("flash")
    expect(flash).to_contain_text("Aika varattu")
    match = re.search(r"Varaustunnus ([A-Z0-9]+)", flash.inner_text())
    assert match, flash.inner_text()
    return match.group(1)


def test_customer_books_joins_and_confirms_the_experts_code(
    browser: Browser, portal_url: str, stack: Stack
) -> None:
    """The whole story: book → too early → join window → lobby → code → verified, on both screens."""
    customer = "browser-story"
    cust_ctx, cust = open_portal(browser, portal_url, customer=customer)
    code = book_in_browser(cust)
    card = cust.locator(f"article[data-booking='{code}']")
    expect(card).to_contain_text("Matleena Malliharju")
    expect(card.get_by_test_id("phase")).to_have_text("Varattu")
    expect(card.get_by_role("button", name="Aloita verkkoneuvottelu")).to_be_disabled()
    cust.screenshot(path=screenshot_path("02-upcoming-booked-360"), full_page=True)

    advance_to_join_window(stack, start_of(stack, customer, code))
    cust.get_by_role("button", name="Päivitä").click()
    start_button = card.get_by_role("button", name="Aloita verkkoneuvottelu")
    expect(start_button).to_be_enabled()
    cust.screenshot(path=screenshot_path("03-upcoming-join-open-360"), full_page=True)
    start_button.click()
    expect(cust.get_by_role("heading", name="Verkkoneuvottelu", level=1)).to_be_visible()
    with cust_ctx.expect_page() as teams_info:
        cust.get_by_role("button", name="Liity neuvotteluun").click()
    teams = teams_info.value
    expect(teams.locator("#lobby")).to_be_visible()
    assert "/_emulator/join/" in teams.url
    teams.screenshot(path=screenshot_path("04-teams-lobby"))
    expect(cust.get_by_test_id("join-msg")).to_contain_text("Odota aulassa")

    exp_ctx, console = open_portal(browser, portal_url, viewport=DESKTOP, hash_="#/")
    console.get_by_label("Kirjautunut").select_option(f"expert:{MATLEENA.expert_id}")
    console.get_by_role("button", name="Kirjaudu").click()
    row = console.locator(f"article[data-booking='{code}']")
    expect(row.get_by_test_id("waiting")).to_have_text("Asiakas odottaa aulassa")
    expect(console.get_by_test_id("waiting-count")).to_contain_text("Aulassa odottaa: 1")
    console.screenshot(path=screenshot_path("05-expert-lobby-desktop"), full_page=True)

    row.get_by_role("button", name="Anna tunnistuskoodi").click()
    issued = row.get_by_test_id("issued-code")
    expect(issued).to_have_text(re.compile(r"^\d{3} \d{3}$"))
    console.screenshot(path=screenshot_path("06-expert-code-desktop"), full_page=True)
    the_code = issued.inner_text().replace(" ", "")
    assert the_code not in console.evaluate("JSON.stringify(localStorage)")

    cust.get_by_label("Tunnistuskoodi").fill(the_code)
    cust.screenshot(path=screenshot_path("07-customer-code-typed-360"), full_page=True)
    cust.get_by_role("button", name="Vahvista").click()
    expect(cust.get_by_test_id("verified")).to_have_text("Tunnistautuminen onnistui. Voit palata Teamsiin.")
    expect(cust.get_by_test_id("phase")).to_have_text("Tunnistettu")
    cust.screenshot(path=screenshot_path("08-customer-verified-360"), full_page=True)

    expect(row.get_by_test_id("phase")).to_have_text("Tunnistettu")
    expect(issued).to_have_count(0)  # the code is gone once used
    console.screenshot(path=screenshot_path("09-expert-verified-desktop"), full_page=True)
    console.set_viewport_size(PHONE)
    console.screenshot(path=screenshot_path("09-expert-verified-360"), full_page=True)
    assert stack.phase(code) == "verified"
    cust_ctx.close()
    exp_ctx.close()


def test_start_is_disabled_and_join_explains_when_the_window_opens(
    browser: Browser, portal_url: str, stack: Stack
) -> None:
    """Too early: Start is disabled with the opening time; Join answers with the same time."""
    customer = "browser-too-early"
    booked = stack.book(customer, expert=OLLI.expert_id, topic="daily.cards")
    code = booked["bookingCode"]
    opens = datetime.fromisoformat(booked["joinWindowOpensAt"].replace("Z", "+00:00"))
    opening = format_datetime(opens, "fi")
    ctx, page = open_portal(browser, portal_url, customer=customer)
    card = page.locator(f"article[data-booking='{code}']")
    expect(card.get_by_role("button", name="Aloita verkkoneuvottelu")).to_be_disabled()
    expect(card).to_contain_text(f"Voit aloittaa neuvottelun {opening} alkaen.")

    page.goto(f"{portal_url}#/meeting/{code}")
    page.get_by_role("button", name="Liity neuvotteluun").click()
    expect(page.get_by_test_id("join-msg")).to_have_text(
        f"Neuvottelun voi aloittaa aikaisintaan 15 minuuttia ennen alkua, {opening} alkaen."
    )
    page.screenshot(path=screenshot_path("10-too-early-360"), full_page=True)

    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("button", name="Join meeting")).to_be_visible()
    page.get_by_role("button", name="Svenska").click()
    expect(page.get_by_role("button", name="Anslut till mötet")).to_be_visible()
    page.get_by_role("button", name="Suomi").click()
    ctx.close()


def test_wrong_codes_tell_attempts_left_and_then_lock(
    browser: Browser, portal_url: str, stack: Stack
) -> None:
    """Two wrong codes say how many attempts are left; the third locks the code."""
    customer = "browser-wrong-code"
    booked = book_soon(stack, customer, expert=MAIJA.expert_id, topic="savings.funds")
    code = booked["bookingCode"]
    advance_to_join_window(stack, datetime.fromisoformat(booked["start"].replace("Z", "+00:00")))
    assert stack.as_customer(customer, "POST", f"/api/appointments/{code}/join").status_code == 200
    issued = stack.as_expert(MAIJA.expert_id, "POST", f"/api/expert/appointments/{code}/identification-code")
    assert issued.status_code == 201, issued.text
    wrong = f"{(int(issued.json()['code']) + 1) % 10**6:06d}"

    ctx, page = open_portal(browser, portal_url, customer=customer, hash_=f"#/meeting/{code}")
    field = page.get_by_label("Tunnistuskoodi")
    message = page.get_by_test_id("ident-msg")
    for left in (2, 1):
        field.fill(wrong)
        field.press("Enter")
        expect(message).to_have_text(f"Koodi on väärä. Yrityksiä jäljellä: {left}.")
        expect(field).to_be_focused()
    page.screenshot(path=screenshot_path("11-wrong-code-360"), full_page=True)
    field.fill(wrong)
    page.get_by_role("button", name="Vahvista").click()
    expect(message).to_contain_text("Koodi on lukittu")
    page.screenshot(path=screenshot_path("12-code-locked-360"), full_page=True)
    assert stack.phase(code) == "lobby"
    ctx.close()


def test_lookup_finds_a_booking_and_the_customer_cancels_it(
    browser: Browser, portal_url: str, stack: Stack
) -> None:
    """Anonymous lookup with code + phone shows the booking; cancelling asks first, then cancels."""
    customer = "browser-cancel"
    booked = stack.book(customer, expert=OLLI.expert_id, topic="daily.accounts", phone="+358505550101")
    code = booked["bookingCode"]
    ctx, page = open_portal(browser, portal_url, customer=customer, hash_="#/lookup")
    page.get_by_label("Varaustunnus").fill(code.lower())
    page.get_by_label("Puhelinnumero").fill("+358 50 555 0101")
    page.get_by_role("button", name="Hae", exact=True).click()
    expect(page.get_by_test_id("booking-code")).to_have_text(code)
    page.screenshot(path=screenshot_path("13-lookup-360"), full_page=True)

    page.get_by_role("link", name="Tulevat neuvottelut").click()
    card = page.locator(f"article[data-booking='{code}']")
    card.get_by_role("button", name="Peru aika").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Haluatko varmasti perua ajan {code}")
    page.screenshot(path=screenshot_path("14-cancel-dialog-360"))
    dialog.get_by_role("button", name="Älä peru").click()
    expect(dialog).to_be_hidden()
    card.get_by_role("button", name="Peru aika").click()
    dialog.get_by_role("button", name="Kyllä, peru").click()
    expect(page.get_by_test_id("flash")).to_have_text(f"Aika {code} on peruttu.")
    expect(card).to_have_count(0)
    assert stack.phase(code) == "cancelled"
    ctx.close()


def lookup(page: Page, code: str, phone: str) -> None:
    page.get_by_label("Varaustunnus").fill(code)
    page.get_by_label("Puhelinnumero").fill(phone)
    page.get_by_role("button", name="Hae", exact=True).click()
    expect(page.get_by_test_id("booking-code")).to_have_text(code)


def test_lookup_without_login_changes_the_time_and_cancels(
    browser: Browser, portal_url: str, stack: Stack
) -> None:
    """Code + phone and no login: a slot taken meanwhile is explained, another one is taken, then
    the booking is cancelled, all with the lookup's manage token instead of the login header."""
    owner = "browser-lookup-owner"
    booked = stack.book(owner, expert=OLLI.expert_id, topic="daily.accounts", phone="+358505550202")
    code = booked["bookingCode"]
    first_start = datetime.fromisoformat(booked["start"].replace("Z", "+00:00"))
    ctx, page = open_portal(browser, portal_url, customer="someone-else", hash_="#/lookup")
    sent: list[Any] = []
    page.on("request", lambda req: sent.append(req) if "/api/appointments" in req.url else None)
    lookup(page, code, "+358 50 555 0202")
    card = page.locator(f"section[data-booking='{code}']")
    when = card.get_by_test_id("lookup-when")
    expect(when).to_have_text(format_datetime(first_start, "fi"))
    minutes = booked["joinWindowMinutes"]
    expect(card).to_contain_text(
        f"Verkkoneuvotteluun voi liittyä kirjautuneena {minutes} minuuttia ennen alkua"
    )

    card.get_by_role("button", name="Muuta aikaa").click()
    expect(card.get_by_role("button", name="Muuta aikaa")).to_have_attribute("aria-expanded", "true")
    slots = card.get_by_role("radio")
    expect(slots.first).to_be_focused()
    taken = slots.first.get_attribute("value")
    assert taken
    stack.book(
        "browser-lookup-rival",
        datetime.fromisoformat(taken.replace("Z", "+00:00")),
        expert=OLLI.expert_id,
        topic="daily.accounts",
    )
    slots.first.check()
    card.get_by_role("button", name="Vahvista uusi aika").click()
    message = page.get_by_test_id("manage-msg")
    expect(message).to_contain_text("Aikaa ei voitu muuttaa: Valittu aika ei ole enää vapaa.")
    expect(card.locator(f"input[value='{taken}']")).to_have_count(0)  # the slots were reloaded
    page.screenshot(path=screenshot_path("15-lookup-slot-taken-360"), full_page=True)
    expect(slots.first).to_be_attached()
    chosen = slots.first.get_attribute("value")
    assert chosen
    new_start = datetime.fromisoformat(chosen.replace("Z", "+00:00"))
    slots.first.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # keyboard only: the next stop after the slots is "Vahvista uusi aika"
    expect(message).to_have_text(f"Aika muutettu. Uusi aika: {format_datetime(new_start, 'fi')}.")
    expect(when).to_have_text(format_datetime(new_start, "fi"))
    expect(when).to_be_focused()
    page.screenshot(path=screenshot_path("16-lookup-rescheduled-360"), full_page=True)
    assert start_of(stack, owner, code) == new_start

    card.get_by_role("button", name="Peru aika").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Haluatko varmasti perua ajan {code}")
    dialog.get_by_role("button", name="Kyllä, peru").click()
    expect(message).to_have_text(f"Aika {code} on peruttu.")
    expect(card.get_by_test_id("phase")).to_have_text("Peruttu")
    expect(card.get_by_role("button", name="Muuta aikaa")).to_have_count(0)
    page.screenshot(path=screenshot_path("17-lookup-cancelled-360"), full_page=True)
    assert stack.phase(code) == "cancelled"

    assert {r.method for r in sent} >= {"POST", "PATCH", "DELETE"}
    assert not [r.url for r in sent if "x-ms-client-principal" in r.headers]
    assert all(r.headers.get("x-booking-token") for r in sent if r.method in ("PATCH", "DELETE"))
    ctx.close()


def test_lookup_with_an_expired_manage_token_asks_to_look_up_again(
    browser: Browser, portal_url: str, stack: Stack
) -> None:
    """A 401 for the manage token (expired or forged) sends the visitor back to the lookup form."""
    booked = stack.book(
        "browser-lookup-expired", expert=OLLI.expert_id, topic="daily.accounts", phone="+358505550303"
    )
    code = booked["bookingCode"]
    ctx, page = open_portal(browser, portal_url, hash_="#/lookup")
    lookup(page, code, "+358505550303")

    def forge(route: Any) -> None:
        route.continue_(headers={**route.request.headers, "x-booking-token": "forged.token"})

    page.route(f"**/api/appointments/{code}", forge)
    page.get_by_role("button", name="Peru aika").click()
    page.get_by_role("dialog").get_by_role("button", name="Kyllä, peru").click()
    expect(page.get_by_test_id("manage-msg")).to_contain_text(
        "Varauksen muokkausaika on päättynyt. Hae varaus uudelleen"
    )
    expect(page.get_by_label("Varaustunnus")).to_be_focused()
    expect(page.locator(f"section[data-booking='{code}']")).to_have_count(0)
    assert stack.phase(code) == "booked"

    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Find a booking", level=1)).to_be_visible()
    ctx.close()
