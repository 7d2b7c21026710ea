"""The demo portal in a real Chromium against the whole stack, step by step as the bank's guide
describes it: a customer books, gets the confirmation, starts and joins the online meeting, the
expert admits them in Teams and issues a code, the customer confirms it; change, cancel and the
notice period; the lookup without a login; the links of the notifications.

The browser tests run on a stack of their own with the bank's real notice period (24 h; the
shared e2e stack sets it to 0). Every page and state passes axe-core (WCAG 2.1 A/AA, EN 301 549)
with zero violations at desktop width and at 360 px, in the language of the test: the main story
runs in fi, sv and en. Screenshots of the key steps land in ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from appointments.localtime import HELSINKI, format_datetime
from tests.e2e.browser_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    axe_violations,
    check_page,
    own_stack,
    screenshot_path,
    with_axe,
)
from tests.e2e.conftest import MAIJA, MATLEENA, OLLI, Stack

pytestmark = pytest.mark.browser
expect.set_options(timeout=15_000)
CUSTOMER_NAME = "Aino Asiakas"
# Who serves loans.home-loan in the language (Matleena speaks no Swedish), and their bank.
EXPERT_OF = {"fi": MATLEENA, "sv": MAIJA, "en": MATLEENA}
BANK_OF = {"fi": "Malliharjun Osuuspankki", "sv": "Esimerkkilän Osuuspankki", "en": "Malliharjun Osuuspankki"}

# What the tests expect to read, per language (the portal's own texts).
TEXTS: dict[str, dict[str, str]] = {
    "fi": {
        "book": "Varaa aika", "online": "Verkkoneuvottelu", "topic": "Aihe", "language": "Neuvottelun kieli",
        "expert": "Asiantuntija", "duration": "Kesto", "phone": "Puhelinnumero",
        "email": "Sähköposti (vapaaehtoinen)", "booked": "Aika varattu", "code": "Varaustunnus",
        "confirmation": "Vahvistus ajanvarauksesta", "thirty": "30 minuuttia", "recording": "tallennetaan",
        "ics": "Lataa kalenteriin (.ics)", "upcoming": "Tulevat neuvottelut",
        "start": "Aloita verkkoneuvottelu",
        "refresh": "Päivitä", "step1": "1. Liity verkkoneuvotteluun", "step2": "2. Tunnistautuminen",
        "join": "Liity neuvotteluun", "lobby": "Odota aulassa",
        "party": "Osallistun verkkoneuvotteluun, jonka toisena osapuolena on asiantuntija "
        "Matleena Malliharju (Malliharjun Osuuspankki).",
        "field": "Verkkoneuvottelun tunniste", "confirm": "Vahvista",
        "verified": "Tunnistautuminen onnistui. Voit palata verkkoneuvotteluun.",
        "back": "Palaa verkkoneuvotteluun", "over": "Neuvottelu on päättynyt.",
        "phase_verified": "Tunnistettu",
        "phase_booked": "Varattu", "waiting": "Asiakas odottaa aulassa", "waited": "Odottanut 2 minuuttia",
        "issue": "Anna tunnistuskoodi", "valid": "Voimassa klo ", "customer": "Asiakas: ",
        "end": "Lopeta neuvottelu", "end_yes": "Lopeta", "teams": "Avaa Teams",
        "changeable": "Voit muuttaa tai perua ajan verkossa", "too_late": "viimeistään 24 tuntia ennen alkua",
    },
    "sv": {
        "book": "Boka tid", "online": "Onlinemöte", "topic": "Ämne", "language": "Mötesspråk",
        "expert": "Expert", "duration": "Längd", "phone": "Telefonnummer", "email": "E-post (frivilligt)",
        "booked": "Tiden är bokad", "code": "Bokningskod", "confirmation": "Bekräftelse på tidsbokningen",
        "thirty": "30 minuter", "recording": "spelas in", "ics": "Lägg till i kalendern (.ics)",
        "upcoming": "Kommande möten", "start": "Starta onlinemötet", "refresh": "Uppdatera",
        "step1": "1. Anslut till onlinemötet", "step2": "2. Identifiering", "join": "Anslut till mötet",
        "lobby": "Vänta i lobbyn",
        "party": "Jag deltar i ett onlinemöte där den andra parten är experten "
        "Maija Suomalainen (Esimerkkilän Osuuspankki).",
        "field": "Onlinemötets kod", "confirm": "Bekräfta",
        "verified": "Identifieringen lyckades. Du kan återgå till onlinemötet.",
        "back": "Tillbaka till onlinemötet", "over": "Mötet har avslutats.", "phase_verified": "Identifierad",
        "phase_booked": "Bokad", "waiting": "Kunden väntar i lobbyn", "waited": "Har väntat 2 minuter",
        "issue": "Ge identifieringskod", "valid": "Giltig till kl. ", "customer": "Kund: ",
        "end": "Avsluta mötet", "end_yes": "Avsluta", "teams": "Öppna Teams",
        "changeable": "Du kan ändra eller avboka tiden på nätet till",
        "too_late": "senast 24 timmar före början",
    },
    "en": {
        "book": "Book a meeting", "online": "Online meeting", "topic": "Topic",
        "language": "Meeting language",
        "expert": "Expert", "duration": "Duration", "phone": "Phone number", "email": "E-mail (optional)",
        "booked": "Booked", "code": "Your booking code is", "confirmation": "Booking confirmation",
        "thirty": "30 minutes", "recording": "recorded", "ics": "Add to calendar (.ics)",
        "upcoming": "Upcoming meetings", "start": "Start online meeting", "refresh": "Refresh",
        "step1": "1. Join the online meeting", "step2": "2. Identification", "join": "Join meeting",
        "lobby": "Wait in the lobby",
        "party": "I am taking part in an online meeting with the expert Matleena Malliharju "
        "(Malliharjun Osuuspankki).",
        "field": "Online meeting code", "confirm": "Confirm",
        "verified": "You have been identified. You can return to the online meeting.",
        "back": "Back to the online meeting", "over": "The meeting has ended.", "phase_verified": "Verified",
        "phase_booked": "Booked", "waiting": "Customer waiting in the lobby", "waited": "Waited 2 minutes",
        "issue": "Issue code", "valid": "Valid until ", "customer": "Customer: ",
        "end": "End meeting", "end_yes": "End", "teams": "Open Teams",
        "changeable": "You can change or cancel online until", "too_late": "until 24 hours before the start",
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def bstack() -> Iterator[Stack]:
    """The browser tests' own stack, with the bank's 24 h notice period (the shared e2e stack sets
    it to 0), so that no other test's bookings or background work reach these pages."""
    with own_stack() as stack:
        yield stack


@pytest.fixture(scope="module")
def portal_url(bstack: Stack) -> str:
    """The devhost serves the demo portal itself (DEVHOST_PORTAL=1)."""
    return f"{bstack.host.base_url}/portal/"


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
    lang: str = "fi",
) -> tuple[BrowserContext, Page]:
    """A fresh context signed in through the dev login (stored like the login bar stores it)."""
    context = with_axe(
        browser.new_context(
            viewport=viewport, locale={"en": "en-US"}.get(lang, f"{lang}-FI"), accept_downloads=True
        )
    )
    who = (
        {"kind": "expert", "id": expert}
        if expert
        else {"kind": "customer", "id": customer or "demo-customer", "name": CUSTOMER_NAME}
    )
    context.add_init_script(
        f"localStorage.setItem('portal.who', {json.dumps(json.dumps(who))});"
        f"localStorage.setItem('portal.lang', {json.dumps(lang)});"
    )
    page = context.new_page()
    page.goto(url + hash_)
    expect(page.locator("body[data-ready=true]")).to_be_attached()
    return context, page


def check_both_widths(page: Page, name: str, lang: str) -> None:
    """axe and the text checks at the page's width and at the other one (desktop / 360 px)."""
    first = page.viewport_size or PHONE
    check_page(page, name, lang)
    page.set_viewport_size(DESKTOP if first["width"] <= 400 else PHONE)
    check_page(page, name, lang)
    page.set_viewport_size(first)


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


def when(view: dict[str, Any], key: str = "start") -> datetime:
    return datetime.fromisoformat(str(view[key]).replace("Z", "+00:00"))


def advance_to(stack: Stack, moment: datetime) -> None:
    seconds = (moment - stack.now()).total_seconds()
    if seconds > 0:
        stack.host.advance(seconds)


def advance_to_join_window(stack: Stack, start: datetime) -> None:
    advance_to(stack, start - timedelta(minutes=15))


def book_in_browser(page: Page, lang: str) -> str:
    """Fill the booking form with the language's expert; the first slot that is still free wins."""
    x = TEXTS[lang]
    page.get_by_role("link", name=x["book"], exact=True).click()
    expect(page.get_by_role("heading", name=x["book"], level=1)).to_be_visible()
    page.get_by_label(x["online"], exact=True).check()
    page.get_by_label(x["topic"], exact=True).select_option("loans.home-loan")
    page.get_by_label(x["language"]).select_option(lang)
    expert = page.get_by_label(x["expert"], exact=True)
    expect(expert.locator(f"option[value='{EXPERT_OF[lang].expert_id}']")).to_be_attached()
    expert.select_option(EXPERT_OF[lang].expert_id)
    page.get_by_label(x["duration"]).select_option("30")
    page.get_by_label(x["phone"]).fill("+358401234567")
    page.get_by_label(x["email"]).fill("asiakas@example.com")
    slots = page.locator(".slots input[name=slot]")
    expect(slots.first).to_be_attached()
    check_both_widths(page, f"booking form {lang}", lang)
    page.screenshot(path=screenshot_path(f"01-booking-form-{lang}"), full_page=True)
    for i in range(min(6, slots.count())):
        slots.nth(i).check()
        page.locator("form.book button[type=submit]").click()
        outcome = page.locator("[data-testid=flash]:not([hidden]), [data-testid=book-msg]:not([hidden])")
        expect(outcome).to_be_visible()
        if page.get_by_test_id("flash").is_visible():
            break
        expect(slots.first).to_be_attached()  # taken meanwhile: the form reloaded its slots
    flash = page.get_by_test_id("flash")
    expect(flash).to_contain_text(x["booked"])
    expect(flash).to_have_attribute("data-kind", "ok")
    match = re.search(r"([A-Z0-9]{8})\.", flash.inner_text())
    assert match, flash.inner_text()
    return match.group(1)


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
def test_customer_books_joins_and_confirms_the_experts_code(
    browser: Browser, portal_url: str, bstack: Stack, lang: str
) -> None:
    """The guide's whole story, in each language: book → confirmation with .ics → too early →
    join window → Teams lobby → the expert sees whom, and for how long, admits and issues a
    code → the customer confirms it on the meeting page → back to the meeting → the end."""
    x = TEXTS[lang]
    customer = f"browser-story-{lang}"
    cust_ctx, cust = open_portal(browser, portal_url, customer=customer, lang=lang)
    code = book_in_browser(cust, lang)

    # The confirmation view: everything the confirmation message says, and the calendar entry.
    expect(cust.get_by_role("heading", name=x["confirmation"], level=1)).to_be_visible()
    body = cust.locator("main")
    expect(body.get_by_test_id("booking-code")).to_have_text(code)
    expect(body).to_contain_text(x["thirty"])
    expect(body.get_by_test_id("bank")).to_have_text(BANK_OF[lang])
    expect(body.get_by_test_id("recording")).to_contain_text(x["recording"])
    view = bstack.as_customer(customer, "GET", f"/api/appointments/{code}").json()
    changeable = when(view) - bstack.now() >= timedelta(hours=24)
    deadline = body.get_by_test_id("manage-online")
    expect(deadline).to_contain_text(x["changeable" if changeable else "too_late"])
    check_both_widths(cust, f"confirmation {lang}", lang)
    cust.screenshot(path=screenshot_path(f"02-confirmation-{lang}"), full_page=True)
    with cust.expect_download() as download:
        cust.get_by_role("button", name=x["ics"]).click()
    ics = download.value.path().read_text(encoding="utf-8")
    assert ics.startswith("BEGIN:VCALENDAR") and f"UID:{code}@" in ics, ics[:200]
    assert download.value.suggested_filename == f"{code}.ics"

    cust.get_by_role("link", name=x["upcoming"], exact=True).first.click()
    card = cust.locator(f"article[data-booking='{code}']")
    expect(card.get_by_test_id("phase")).to_have_text(x["phase_booked"])
    expect(card.get_by_role("button", name=x["start"])).to_be_disabled()
    check_both_widths(cust, f"upcoming {lang}", lang)

    advance_to_join_window(bstack, when(view))
    cust.get_by_role("button", name=x["refresh"]).click()
    start_button = card.get_by_role("button", name=x["start"])
    expect(start_button).to_be_enabled()
    start_button.click()

    # The meeting page: 1. join (recorded), 2. identification.
    expect(cust.get_by_role("heading", name=x["step1"], level=2)).to_be_visible()
    expect(cust.get_by_test_id("recording")).to_contain_text(x["recording"])
    check_both_widths(cust, f"meeting before joining {lang}", lang)
    with cust_ctx.expect_page() as teams_info:
        cust.get_by_role("button", name=x["join"]).click()
    teams = teams_info.value
    expect(teams.locator("#lobby")).to_be_visible()
    assert "/_emulator/join/" in teams.url
    expect(cust.get_by_test_id("join-msg")).to_contain_text(x["lobby"])
    expect(cust.get_by_role("heading", name=x["step2"], level=2)).to_be_visible()
    expect(cust.get_by_test_id("ident-party")).to_have_text(x["party"])
    check_both_widths(cust, f"meeting in the lobby {lang}", lang)
    cust.screenshot(path=screenshot_path(f"03-meeting-lobby-{lang}"), full_page=True)

    # The expert's console: whom they admit, and how long they have waited.
    exp_ctx, console = open_portal(
        browser, portal_url, expert=EXPERT_OF[lang].expert_id, viewport=DESKTOP, hash_="#/expert", lang=lang
    )
    console_day = when(view).astimezone(HELSINKI)
    expect(console.get_by_test_id("expert-day")).to_contain_text(f"{console_day.day}")
    row = console.locator(f"article[data-booking='{code}']")
    expect(row.get_by_test_id("waiting")).to_have_text(x["waiting"])
    expect(row.get_by_test_id("customer-name")).to_have_text(f"{x['customer']}{CUSTOMER_NAME}")
    bstack.host.advance(minutes=2)
    expect(row.get_by_test_id("waited")).to_contain_text(x["waited"])
    check_both_widths(console, f"expert lobby {lang}", lang)
    console.screenshot(path=screenshot_path(f"04-expert-lobby-{lang}"), full_page=True)

    # Teams: the organizer is in at once and admits the customer from the lobby.
    with exp_ctx.expect_page() as organizer_info:
        row.get_by_role("link", name=x["teams"]).click()
    organizer = organizer_info.value
    admit = organizer.get_by_role("button", name="Päästä sisään / Admit")
    expect(admit).to_be_enabled()
    assert axe_violations(organizer) == [] and axe_violations(teams) == []  # the stand-in, too
    admit.click()
    expect(teams.locator("#admitted")).to_be_visible()

    row.get_by_role("button", name=x["issue"]).click()
    issued = row.get_by_test_id("issued-code")
    expect(issued).to_have_text(re.compile(r"^\d{3} \d{3}$"))
    expect(row.get_by_test_id("code-valid")).to_contain_text(x["valid"])
    check_both_widths(console, f"expert code {lang}", lang)
    console.screenshot(path=screenshot_path(f"05-expert-code-{lang}"), full_page=True)
    the_code = issued.inner_text().replace(" ", "")
    assert the_code not in console.evaluate("JSON.stringify(localStorage)")

    cust.get_by_label(x["field"]).fill(the_code)
    cust.get_by_role("button", name=x["confirm"], exact=True).click()
    expect(cust.get_by_test_id("verified")).to_have_text(x["verified"])
    expect(cust.get_by_test_id("join-msg")).to_be_hidden()  # "wait in the lobby" is over
    expect(cust.get_by_test_id("phase")).to_have_text(x["phase_verified"])
    back = cust.get_by_role("button", name=x["back"])
    expect(back).to_be_focused()
    check_both_widths(cust, f"meeting verified {lang}", lang)
    cust.screenshot(path=screenshot_path(f"06-customer-verified-{lang}"), full_page=True)
    with cust_ctx.expect_page() as again:
        back.click()
    assert "/_emulator/join/" in again.value.url

    expect(row.get_by_test_id("phase")).to_have_text(x["phase_verified"])
    expect(issued).to_have_count(0)  # the code is gone once used
    row.get_by_role("button", name=x["end"]).click()
    console.get_by_role("dialog").get_by_role("button", name=x["end_yes"], exact=True).click()
    expect(cust.get_by_test_id("join-msg")).to_have_text(x["over"])
    expect(cust.get_by_test_id("teams-link")).to_be_hidden()
    expect(cust.get_by_role("button", name=x["back"])).to_be_hidden()
    expect(row.get_by_role("link", name=x["teams"])).to_have_count(0)
    check_both_widths(cust, f"meeting ended {lang}", lang)
    assert bstack.phase(code) == "ended"
    # The name is for the expert's card only: never in the orchestration's payloads or in the logs.
    history = json.dumps(bstack.host.status(f"appt-{code}", show_history=True))
    assert CUSTOMER_NAME not in history
    assert CUSTOMER_NAME not in bstack.host.output()
    cust_ctx.close()
    exp_ctx.close()


def test_start_is_disabled_and_join_explains_when_the_window_opens(
    browser: Browser, portal_url: str, bstack: Stack
) -> None:
    """Too early: Start is disabled with the opening time; Join answers with the same time."""
    customer = "browser-too-early"
    booked = bstack.book(customer, expert=OLLI.expert_id, topic="daily.cards")
    code = booked["bookingCode"]
    opening = format_datetime(when(booked, "joinWindowOpensAt"), "fi")
    ctx, page = open_portal(browser, portal_url, customer=customer)
    card = page.locator(f"article[data-booking='{code}']")
    expect(card.get_by_role("button", name="Aloita verkkoneuvottelu")).to_be_disabled()
    expect(card).to_contain_text(f"Voit aloittaa neuvottelun {opening} alkaen.")

    # Join is clicked on a settled page: the meeting page shows its steps only once the appointment
    # is loaded (before, the facts replacing "Ladataan…" pushed the button down under the click),
    # and this module runs on a host of its own, so no other test's background work delays the answer.
    page.goto(f"{portal_url}#/appointments/{code}/meeting")
    expect(page.get_by_test_id("booking-code")).to_have_text(code)
    page.get_by_role("button", name="Liity neuvotteluun").click()
    message = page.get_by_test_id("join-msg")
    expect(message).to_have_text(
        f"Neuvottelun voi aloittaa aikaisintaan 15 minuuttia ennen alkua, {opening} alkaen."
    )
    expect(message).to_have_attribute("data-kind", "error")
    check_both_widths(page, "too early fi", "fi")
    page.screenshot(path=screenshot_path("10-too-early-360"), full_page=True)

    for lang, join in (("en", "Join meeting"), ("sv", "Anslut till mötet")):
        page.get_by_role("button", name={"en": "English", "sv": "Svenska"}[lang]).click()
        page.get_by_role("button", name=join).click()
        expect(message).to_contain_text(format_datetime(when(booked, "joinWindowOpensAt"), lang))
        check_both_widths(page, f"too early {lang}", lang)
    page.get_by_role("button", name="Suomi").click()
    ctx.close()


def test_wrong_codes_tell_attempts_left_and_the_expert_sees_the_lock_at_once(
    browser: Browser, portal_url: str, bstack: Stack
) -> None:
    """Two wrong codes say how many attempts are left; the third locks the code, and the expert's
    console hides it and says so on its next poll."""
    customer = "browser-wrong-code"
    booked = book_soon(bstack, customer, expert=MAIJA.expert_id, topic="savings.funds")
    code = booked["bookingCode"]
    advance_to_join_window(bstack, when(booked))
    assert bstack.as_customer(customer, "POST", f"/api/appointments/{code}/join").status_code == 200
    exp_ctx, console = open_portal(
        browser, portal_url, expert=MAIJA.expert_id, viewport=DESKTOP, hash_="#/expert"
    )
    row = console.locator(f"article[data-booking='{code}']")
    row.get_by_role("button", name="Anna tunnistuskoodi").click()
    issued = row.get_by_test_id("issued-code")
    expect(issued).to_have_text(re.compile(r"^\d{3} \d{3}$"))
    wrong = f"{(int(issued.inner_text().replace(' ', '')) + 1) % 10**6:06d}"

    ctx, page = open_portal(browser, portal_url, customer=customer, hash_=f"#/appointments/{code}/meeting")
    field = page.get_by_label("Verkkoneuvottelun tunniste")
    message = page.get_by_test_id("ident-msg")
    for left in (2, 1):
        field.fill(wrong)
        field.press("Enter")
        expect(message).to_have_text(f"Tunniste on väärä. Yrityksiä jäljellä: {left}.")
        expect(message).to_have_attribute("data-kind", "error")
        expect(field).to_be_focused()
    check_both_widths(page, "wrong code fi", "fi")
    page.screenshot(path=screenshot_path("11-wrong-code-360"), full_page=True)
    field.fill(wrong)
    page.get_by_role("button", name="Vahvista").click()
    expect(message).to_contain_text("Tunniste on lukittu")

    expect(issued).to_have_count(0, timeout=5_000)  # two polls of the console at most
    expect(row.get_by_test_id("code-notice")).to_contain_text("koodi lukittiin", timeout=5_000)
    check_both_widths(console, "expert code locked fi", "fi")
    console.screenshot(path=screenshot_path("12-expert-code-locked"), full_page=True)
    assert bstack.phase(code) == "lobby"
    ctx.close()
    exp_ctx.close()


def test_inside_the_notice_period_change_and_cancel_are_not_offered_and_a_late_cancel_fails_as_an_error(
    browser: Browser, portal_url: str, bstack: Stack
) -> None:
    """Under 24 h before the start the card offers neither change nor cancel and says why and whom to
    call; a cancel the page still offered when the time ran out fails in error style, not success."""
    customer = "browser-notice"
    booked = bstack.book(customer, expert=OLLI.expert_id, topic="daily.accounts")
    code = booked["bookingCode"]
    start = when(booked)
    advance_to(bstack, start - timedelta(hours=24, minutes=30))
    ctx, page = open_portal(browser, portal_url, customer=customer)
    card = page.locator(f"article[data-booking='{code}']")
    cancel = card.get_by_role("button", name="Peru aika")
    expect(cancel).to_be_visible()
    expect(card.get_by_role("link", name="Muokkaa")).to_be_visible()

    bstack.host.advance(minutes=45)  # the notice period begins while the page is open
    cancel.click()
    page.get_by_role("dialog").get_by_role("button", name="Kyllä, peru").click()
    flash = page.get_by_test_id("flash")
    expect(flash).to_contain_text("Aikaa ei voitu perua")
    expect(flash).to_have_attribute("data-kind", "error")
    assert bstack.phase(code) == "booked"

    expect(card.get_by_role("button", name="Peru aika")).to_have_count(0)
    expect(card.get_by_role("link", name="Muokkaa")).to_have_count(0)
    note = card.get_by_test_id("change-note")
    expect(note).to_contain_text("viimeistään 24 tuntia ennen alkua")
    phone = bstack.host.get("/api/topics").json()["servicePhone"]
    expect(note).to_contain_text(f"Soita meille numeroon {phone}.")
    check_both_widths(page, "notice period fi", "fi")

    # The cancel link of a notification explains the same instead of asking.
    page.goto(f"{portal_url}#/appointments/{code}/cancel")
    expect(page.get_by_test_id("manage-msg")).to_contain_text("viimeistään 24 tuntia ennen alkua")
    expect(page.get_by_role("dialog")).to_be_hidden()
    check_both_widths(page, "cancel link in the notice period fi", "fi")
    ctx.close()


def test_the_notification_links_open_the_page_their_text_names(
    browser: Browser, portal_url: str, bstack: Stack
) -> None:
    """The confirmation mail's change link opens the booking with "Muuta aikaa", its cancel link asks
    to cancel, and the join-open mail's link opens the meeting page."""
    customer = "browser-links"
    booked = bstack.book(customer, expert=OLLI.expert_id, topic="daily.accounts", email="linkit@example.com")
    code = booked["bookingCode"]
    links = mail_links(bstack, code, "linkit@example.com")
    change = next(u for u in links if u.endswith(f"/portal/#/appointments/{code}"))
    cancel = next(u for u in links if u.endswith(f"/portal/#/appointments/{code}/cancel"))
    day = when(booked).astimezone(HELSINKI).date()
    console_link = next(u for u in mail_links(bstack, code, OLLI.email) if "/portal/#/expert" in u)
    assert console_link.endswith(f"/portal/#/expert/{day.isoformat()}"), console_link
    ctx, page = open_portal(browser, portal_url, customer=customer)
    page.goto(change)
    expect(page.get_by_role("heading", name="Ajanvaraus", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Muuta aikaa")).to_be_visible()
    check_both_widths(page, "change link fi", "fi")

    page.goto(cancel)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Haluatko varmasti perua ajan {code}")
    check_both_widths(page, "cancel link fi", "fi")
    dialog.get_by_role("button", name="Älä peru").click()
    assert bstack.phase(code) == "booked"

    page.goto(f"{portal_url}#/appointments/{code}/meeting")
    expect(page.get_by_role("heading", name="1. Liity verkkoneuvotteluun", level=2)).to_be_visible()
    ctx.close()

    # The expert's "open in the console" link shows the appointment's day, not today.
    exp_ctx, console = open_portal(browser, portal_url, expert=OLLI.expert_id, viewport=DESKTOP)
    console.goto(console_link)
    expect(console.get_by_test_id("expert-day")).to_contain_text(f"{day.day}.{day.month}.{day.year}")
    expect(console.locator(f"article[data-booking='{code}']")).to_be_visible()
    exp_ctx.close()

    # After a cancel, "book a new time" goes to the booking form.
    assert bstack.as_customer(customer, "DELETE", f"/api/appointments/{code}").status_code == 200
    bstack.host.wait_idle()
    assert any(u.endswith("/portal/#/book") for u in mail_links(bstack, code, "linkit@example.com"))


def mail_links(stack: Stack, code: str, to: str) -> set[str]:
    """The links in the mails the Graph emulator delivered to ``to`` about booking ``code``."""
    mails = httpx.get(f"{stack.graph.origin}/_emulator/mail").json()["value"]
    mine = [json.dumps(m) for m in mails if code in json.dumps(m) and to in json.dumps(m)]
    assert mine, f"no mail to {to} about {code}"
    return {json.loads(f'"{u}"') for m in mine for u in re.findall(r'href=\\"([^"\\]+)\\"', m)}


def lookup(page: Page, code: str, phone: str) -> None:
    page.get_by_label("Varaustunnus").fill(code)
    page.get_by_label("Puhelinnumero").fill(phone)
    page.get_by_role("button", name="Hae", exact=True).click()
    expect(page.get_by_test_id("booking-code")).to_have_text(code)


def test_lookup_without_login_changes_the_time_and_cancels(
    browser: Browser, portal_url: str, bstack: Stack
) -> None:
    """Code + phone and no login: only times the rules allow are offered, a slot taken meanwhile is
    explained, another one is taken by keyboard, then the booking is cancelled, all with the
    lookup's manage token instead of the login header."""
    owner = "browser-lookup-owner"
    booked = bstack.book(owner, expert=OLLI.expert_id, topic="daily.accounts", phone="+358505550202")
    code = booked["bookingCode"]
    ctx, page = open_portal(browser, portal_url, customer="someone-else", hash_="#/lookup")
    check_both_widths(page, "lookup form fi", "fi")
    sent: list[Any] = []
    page.on("request", lambda req: sent.append(req) if "/api/appointments" in req.url else None)
    lookup(page, code, "+358 50 555 0202")
    card = page.locator(f"section[data-booking='{code}']")
    when_ = card.get_by_test_id("lookup-when")
    expect(when_).to_have_text(format_datetime(when(booked), "fi"))
    expect(card).to_contain_text(
        f"Verkkoneuvotteluun voi liittyä kirjautuneena {booked['joinWindowMinutes']} minuuttia ennen alkua"
    )
    check_both_widths(page, "lookup found fi", "fi")

    card.get_by_role("button", name="Muuta aikaa").click()
    expect(card.get_by_role("button", name="Muuta aikaa")).to_have_attribute("aria-expanded", "true")
    slots = card.get_by_role("radio")
    expect(slots.first).to_be_focused()
    check_both_widths(page, "lookup reschedule fi", "fi")
    earliest = bstack.now() + timedelta(hours=24)
    offered = [
        when({"start": v})
        for v in card.locator("input[name=new-slot]").evaluate_all("(xs) => xs.map((x) => x.value)")
    ]
    assert offered and min(offered) >= earliest, "a time inside the notice period was offered"
    taken = slots.first.get_attribute("value")
    assert taken
    bstack.book("browser-lookup-rival", when({"start": taken}), expert=OLLI.expert_id, topic="daily.accounts")
    slots.first.check()
    card.get_by_role("button", name="Vahvista uusi aika").click()
    message = page.get_by_test_id("manage-msg")
    expect(message).to_contain_text("Aikaa ei voitu muuttaa: Valittu aika ei ole enää vapaa.")
    expect(message).to_have_attribute("data-kind", "error")
    expect(card.locator(f"input[value='{taken}']")).to_have_count(0)  # the slots were reloaded
    check_both_widths(page, "lookup slot taken fi", "fi")
    expect(slots.first).to_be_attached()
    chosen = slots.first.get_attribute("value")
    assert chosen
    slots.first.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # keyboard only: the next stop after the slots is "Vahvista uusi aika"
    expect(message).to_have_text(
        f"Aika muutettu. Uusi aika: {format_datetime(when({'start': chosen}), 'fi')}."
    )
    expect(when_).to_be_focused()
    check_both_widths(page, "lookup rescheduled fi", "fi")
    assert when(bstack.as_customer(owner, "GET", f"/api/appointments/{code}").json()) == when(
        {"start": chosen}
    )

    card.get_by_role("button", name="Peru aika").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Haluatko varmasti perua ajan {code}")
    check_both_widths(page, "lookup cancel dialog fi", "fi")
    dialog.get_by_role("button", name="Kyllä, peru").click()
    expect(message).to_have_text(f"Aika {code} on peruttu.")
    expect(card.get_by_test_id("phase")).to_have_text("Peruttu")
    expect(card.get_by_role("button", name="Muuta aikaa")).to_have_count(0)
    check_both_widths(page, "lookup cancelled fi", "fi")
    assert bstack.phase(code) == "cancelled"

    assert {r.method for r in sent} >= {"POST", "PATCH", "DELETE"}
    assert not [r.url for r in sent if "x-ms-client-principal" in r.headers]
    assert all(r.headers.get("x-booking-token") for r in sent if r.method in ("PATCH", "DELETE"))
    assert {r.headers.get("accept-language") for r in sent} == {"fi"}  # the server localises by it
    ctx.close()


def test_lookup_with_an_expired_manage_token_asks_to_look_up_again(
    browser: Browser, portal_url: str, bstack: Stack
) -> None:
    """A 401 for the manage token (expired or forged) sends the visitor back to the lookup form."""
    booked = bstack.book(
        "browser-lookup-expired", expert=OLLI.expert_id, topic="daily.accounts", phone="+358505550303"
    )
    code = booked["bookingCode"]
    ctx, page = open_portal(browser, portal_url, hash_="#/lookup")
    page.get_by_label("Varaustunnus").fill("ZZZZZZZZ")
    page.get_by_label("Puhelinnumero").fill("+358505550303")
    page.get_by_role("button", name="Hae", exact=True).click()
    expect(page.get_by_test_id("lookup-msg")).to_have_text("Varausta ei löytynyt näillä tiedoilla.")
    expect(page.get_by_test_id("lookup-msg")).to_have_attribute("data-kind", "error")
    check_both_widths(page, "lookup not found fi", "fi")
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
    assert bstack.phase(code) == "booked"

    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Find a booking", level=1)).to_be_visible()
    ctx.close()


@pytest.mark.parametrize("lang", ["sv", "en"])
def test_every_other_page_is_accessible_in_swedish_and_english(
    browser: Browser, portal_url: str, bstack: Stack, lang: str
) -> None:
    """The pages the Finnish tests above visit, in sv and en, at both widths: the booking form with
    its errors, the signed-in change page with its picker and dialog, the lookup, the notice period."""
    customer = f"browser-a11y-{lang}"
    booked = bstack.book(customer, expert=OLLI.expert_id, topic="daily.accounts", phone="+358505550404")
    code = booked["bookingCode"]
    ctx, page = open_portal(browser, portal_url, customer=customer, hash_="#/book", lang=lang)
    expect(page.locator(".slots input[name=slot]").first).to_be_attached()
    page.locator("form.book button[type=submit]").click()  # no time chosen
    expect(page.get_by_test_id("book-msg")).to_be_visible()
    check_both_widths(page, f"booking form errors {lang}", lang)

    page.goto(f"{portal_url}#/appointments/{code}")
    page.get_by_role("button", name={"sv": "Ändra tid", "en": "Change time"}[lang]).click()
    expect(page.get_by_role("radio").first).to_be_focused()
    check_both_widths(page, f"change page {lang}", lang)
    page.goto(f"{portal_url}#/appointments/{code}/cancel")
    expect(page.get_by_role("dialog")).to_be_visible()
    check_both_widths(page, f"cancel dialog {lang}", lang)
    page.keyboard.press("Escape")

    page.goto(f"{portal_url}#/lookup")
    page.locator("#lookup-code").fill(code)
    page.locator("#lookup-phone").fill("+358505550404")
    page.locator("#lookup-phone").press("Enter")
    expect(page.get_by_test_id("booking-code")).to_have_text(code)
    check_both_widths(page, f"lookup found {lang}", lang)

    advance_to(bstack, when(booked) - timedelta(hours=23))
    page.goto(f"{portal_url}#/")
    expect(page.locator(f"article[data-booking='{code}']").get_by_test_id("change-note")).to_be_visible()
    check_both_widths(page, f"notice period {lang}", lang)
    ctx.close()


def test_a_keyboard_alone_books_joins_and_confirms(browser: Browser, portal_url: str, bstack: Stack) -> None:
    """The whole customer flow with the keyboard only: Tab, arrows, Space and Enter."""
    customer = "browser-keyboard"
    ctx, page = open_portal(browser, portal_url, customer=customer, viewport=PHONE)

    def tab_to(selector: str, limit: int = 80) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("(s) => document.activeElement?.matches(s)", selector):
                return
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("nav a[href='#/book']")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Varaa aika", level=1)).to_be_visible()
    expect(page.locator(".slots input[name=slot]").first).to_be_attached()
    tab_to(".slots input[name=slot]")
    page.keyboard.press("Space")
    tab_to("#phone")
    page.keyboard.type("+358401234567")
    tab_to("form.book button[type=submit]")
    page.keyboard.press("Enter")
    flash = page.get_by_test_id("flash")
    expect(flash).to_contain_text("Aika varattu")
    code = re.search(r"([A-Z0-9]{8})\.", flash.inner_text()).group(1)  # type: ignore[union-attr]

    tab_to("main a[href='#/']")
    page.keyboard.press("Enter")
    view = bstack.as_customer(customer, "GET", f"/api/appointments/{code}").json()
    advance_to_join_window(bstack, when(view))
    tab_to("main .toolbar button")
    page.keyboard.press("Enter")
    start = page.locator(f"article[data-booking='{code}'] button.primary")
    expect(start).to_be_enabled()
    tab_to(f"article[data-booking='{code}'] button.primary")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="1. Liity verkkoneuvotteluun", level=2)).to_be_visible()
    tab_to("button.big")
    with ctx.expect_page():
        page.keyboard.press("Enter")
    ident = page.get_by_label("Verkkoneuvottelun tunniste")
    expect(ident).to_be_focused()
    expert = view["expert"]["id"]
    issued = bstack.as_expert(expert, "POST", f"/api/expert/appointments/{code}/identification-code")
    assert issued.status_code == 201, issued.text
    page.keyboard.type(issued.json()["code"])
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("verified")).to_be_visible()
    expect(page.get_by_role("button", name="Palaa verkkoneuvotteluun")).to_be_focused()
    assert bstack.phase(code) == "verified"
    ctx.close()
