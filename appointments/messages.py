"""Every text an error shows a person, in Finnish, Swedish and English: one catalogue.

Domain errors and field errors carry a stable machine ``code`` and its parameters; nothing in the
domain writes prose. The HTTP layer picks the caller's language from ``Accept-Language``
(:func:`negotiate`) and renders ``title`` and ``detail`` here (:func:`render`). Finnish is the
default, as in the portal: a caller who states no supported language gets Finnish.

Parameters are formatted with ``str.format``; a few carry values that themselves need words
(``phase``, ``channels``), and those are translated by :data:`VALUE_LABELS` before formatting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from appointments.catalogue import LANGUAGES

DEFAULT_LANGUAGE = "fi"

# Problem titles: one per problem type (the type URI's slug).
TITLES: dict[str, dict[str, str]] = {
    "bad-request": {"fi": "Virheellinen pyyntö", "sv": "Felaktig begäran", "en": "Bad request"},
    "malformed-request": {"fi": "Virheellinen pyyntö", "sv": "Felaktig begäran", "en": "Malformed request"},
    "validation-failed": {"fi": "Tarkista tiedot", "sv": "Kontrollera uppgifterna", "en": "Invalid request"},
    "unauthenticated": {
        "fi": "Kirjautuminen vaaditaan",
        "sv": "Inloggning krävs",
        "en": "Authentication required",
    },
    "forbidden": {"fi": "Ei käyttöoikeutta", "sv": "Åtkomst nekad", "en": "Forbidden"},
    "not-found": {"fi": "Ei löytynyt", "sv": "Hittades inte", "en": "Not found"},
    "method-not-allowed": {
        "fi": "Toiminto ei ole sallittu",
        "sv": "Metoden är inte tillåten",
        "en": "Method not allowed",
    },
    "conflict": {"fi": "Ei mahdollista nyt", "sv": "Inte möjligt just nu", "en": "Conflict"},
    "illegal-transition": {
        "fi": "Ei sallittu tässä vaiheessa",
        "sv": "Inte tillåtet i detta skede",
        "en": "Not allowed in the current phase",
    },
    "gone": {"fi": "Ei enää mahdollista", "sv": "Inte längre möjligt", "en": "Gone"},
    "payload-too-large": {
        "fi": "Pyyntö on liian suuri",
        "sv": "Begäran är för stor",
        "en": "Request too large",
    },
    "locked": {"fi": "Lukittu", "sv": "Låst", "en": "Locked"},
    "too-many-requests": {"fi": "Liian monta yritystä", "sv": "För många försök", "en": "Too many requests"},
    "idempotency-key-reused": {
        "fi": "Pyynnön tunniste on jo käytetty",
        "sv": "Begärans nyckel har redan använts",
        "en": "Idempotency-Key reused",
    },
    "meeting-not-ready": {
        "fi": "Verkkoneuvottelua valmistellaan",
        "sv": "Onlinemötet förbereds",
        "en": "Meeting is being prepared",
    },
    "meeting-unavailable": {
        "fi": "Verkkoneuvottelu ei ole käytettävissä",
        "sv": "Onlinemötet är inte tillgängligt",
        "en": "Meeting unavailable",
    },
    "calendars-unavailable": {
        "fi": "Kalenterit eivät ole käytettävissä",
        "sv": "Kalendrarna är inte tillgängliga",
        "en": "Calendars unavailable",
    },
    "wrong-code": {"fi": "Väärä tunniste", "sv": "Fel kod", "en": "Wrong code"},
    "code-locked": {"fi": "Tunniste on lukittu", "sv": "Koden är låst", "en": "Code locked"},
    "code-expired": {"fi": "Tunniste on vanhentunut", "sv": "Koden har gått ut", "en": "Code expired"},
    "no-code": {"fi": "Ei odottavaa tunnistetta", "sv": "Ingen väntande kod", "en": "No code outstanding"},
    "internal": {"fi": "Sisäinen virhe", "sv": "Internt fel", "en": "Internal error"},
}

# Problem details and field messages, by code.
MESSAGES: dict[str, dict[str, str]] = {
    # --- whole-request problems ---
    "appointment_not_found": {
        "fi": "Ajanvarausta ei löytynyt.",
        "sv": "Bokningen hittades inte.",
        "en": "No such appointment.",
    },
    "lookup_not_found": {
        "fi": "Varaustunnuksella ja puhelinnumerolla ei löytynyt ajanvarausta.",
        "sv": "Ingen bokning hittades med den bokningskoden och det telefonnumret.",
        "en": "No appointment matches this booking code and phone number.",
    },
    "hold_not_found": {
        "fi": "Varattua aikaa ei löytynyt.",
        "sv": "Den reserverade tiden hittades inte.",
        "en": "No such hold.",
    },
    "slot_taken": {
        "fi": "Valittu aika ei ole enää vapaa. Valitse toinen aika.",
        "sv": "Den valda tiden är inte längre ledig. Välj en annan tid.",
        "en": "The chosen time is no longer free. Please choose another time.",
    },
    "meeting_in_progress": {
        "fi": "Tapaaminen on käynnissä, eikä sitä voi enää muuttaa.",
        "sv": "Mötet pågår och kan inte längre ändras.",
        "en": "The meeting is in progress and can no longer be changed.",
    },
    "appointment_closed": {
        "fi": "Ajanvaraus on jo päättynyt (tila: {phase}).",
        "sv": "Bokningen är redan avslutad (status: {phase}).",
        "en": "The appointment is closed ({phase}).",
    },
    "illegal_transition": {
        "fi": "Toimintoa ei voi tehdä, kun ajanvarauksen tila on {phase}.",
        "sv": "Åtgärden kan inte utföras när bokningens status är {phase}.",
        "en": "This is not allowed while the appointment is {phase}.",
    },
    "notice_period": {
        "fi": "Ajanvarausta voi muuttaa tai sen voi perua verkossa {hours} tuntia ennen alkua. "
        "Soita meille numeroon {servicePhone}, niin muutamme sen.",
        "sv": "Bokningen kan ändras eller avbokas på nätet fram till {hours} timmar före start. "
        "Ring oss på {servicePhone} så ändrar vi den.",
        "en": "Appointments can be changed or cancelled online until {hours} h before the start. "
        "Please call us on {servicePhone} to change it.",
    },
    "concurrent_change": {
        "fi": "Ajanvarausta muutettiin samaan aikaan. Lataa sivu uudelleen ja yritä uudestaan.",
        "sv": "Bokningen ändrades samtidigt. Ladda om sidan och försök igen.",
        "en": "The appointment changed meanwhile. Please reload and try again.",
    },
    "not_online": {
        "fi": "Vain verkkoneuvotteluun voi liittyä.",
        "sv": "Endast onlinemöten kan anslutas till.",
        "en": "Only online meetings can be joined.",
    },
    "meeting_ended": {
        "fi": "Tapaaminen on päättynyt.",
        "sv": "Mötet har avslutats.",
        "en": "The meeting has ended.",
    },
    "too_early": {
        "fi": "Verkkoneuvotteluun voi liittyä aikaisintaan {minutes} minuuttia ennen sen alkua.",
        "sv": "Onlinemötet kan startas tidigast {minutes} minuter före starttiden.",
        "en": "The meeting can be started at the earliest {minutes} minutes before its start.",
    },
    "meeting_not_ready": {
        "fi": "Verkkoneuvottelua valmistellaan. Yritä uudelleen muutaman sekunnin kuluttua.",
        "sv": "Onlinemötet förbereds. Försök igen om några sekunder.",
        "en": "The meeting is being prepared. Please try again in a few seconds.",
    },
    "meeting_unavailable": {
        "fi": "Verkkoneuvottelua ei voitu luoda. Asiantuntijalle on ilmoitettu, "
        "ja hän ottaa sinuun yhteyttä.",
        "sv": "Onlinemötet kunde inte skapas. Experten har informerats och kontaktar dig.",
        "en": "The online meeting could not be created. Your expert has been told and will contact you.",
    },
    "idempotency_key_reused": {
        "fi": "Pyynnön tunniste (Idempotency-Key) on jo käytetty toiseen pyyntöön.",
        "sv": "Begärans nyckel (Idempotency-Key) har redan använts för en annan begäran.",
        "en": "This Idempotency-Key was already used for a different request.",
    },
    "wrong_phase": {
        "fi": "Tunnisteen voi antaa vain, kun asiakas odottaa aulassa.",
        "sv": "En kod kan ges endast när kunden väntar i lobbyn.",
        "en": "A code can be issued only while the customer waits in the lobby.",
    },
    "too_many_failures": {
        "fi": "Liian monta epäonnistunutta yritystä. Soita meille numeroon {servicePhone}.",
        "sv": "För många misslyckade försök. Ring oss på {servicePhone}.",
        "en": "Too many failed attempts. Please call us on {servicePhone}.",
    },
    "too_many_attempts": {
        "fi": "Liian monta epäonnistunutta yritystä. Odota {retryAfter} sekuntia ja yritä uudelleen.",
        "sv": "För många misslyckade försök. Vänta {retryAfter} sekunder och försök igen.",
        "en": "Too many failed attempts. Please wait {retryAfter} seconds before trying again.",
    },
    "no_code": {
        "fi": "Vahvistettavaa tunnistetta ei ole.",
        "sv": "Ingen kod väntar på bekräftelse.",
        "en": "No identification code is waiting for confirmation.",
    },
    "wrong_code": {
        "fi": "Tunniste ei ole oikein.",
        "sv": "Koden är inte korrekt.",
        "en": "The code is not correct.",
    },
    "code_locked": {
        "fi": "Liian monta väärää yritystä. Pyydä asiantuntijalta uusi tunniste.",
        "sv": "För många felaktiga försök. Be experten om en ny kod.",
        "en": "Too many wrong attempts. Ask the expert for a new code.",
    },
    "code_expired": {
        "fi": "Tunniste on vanhentunut. Pyydä asiantuntijalta uusi tunniste.",
        "sv": "Koden har gått ut. Be experten om en ny kod.",
        "en": "The code has expired. Ask the expert for a new code.",
    },
    "busy": {
        "fi": "Palvelu on juuri nyt kiireinen. Yritä uudelleen.",
        "sv": "Tjänsten är upptagen just nu. Försök igen.",
        "en": "Please try again.",
    },
    "sign_in": {
        "fi": "Kirjaudu sisään jatkaaksesi.",
        "sv": "Logga in för att fortsätta.",
        "en": "Sign in to continue.",
    },
    "identity_header_refused": {
        "fi": "Tunnistustietoa ei hyväksytä, koska alustan tunnistautuminen ei ole käytössä.",
        "sv": "Identitetsuppgiften godtas inte eftersom plattformens autentisering är avstängd.",
        "en": "The identity header is not accepted: platform authentication is off.",
    },
    "booking_link_expired": {
        "fi": "Varauslinkki on vanhentunut. Hae varaus uudelleen.",
        "sv": "Bokningslänken har gått ut. Sök fram bokningen igen.",
        "en": "The booking link has expired. Please look the booking up again.",
    },
    "experts_only": {
        "fi": "Tämä toiminto on vain asiantuntijoille.",
        "sv": "Den här funktionen är endast för experter.",
        "en": "This is for experts only.",
    },
    "calendars_unavailable": {
        "fi": "Asiantuntijoiden kalentereita ei voi lukea juuri nyt. Yritä hetken kuluttua uudelleen.",
        "sv": "Experternas kalendrar kan inte läsas just nu. Försök igen om en stund.",
        "en": "The experts' calendars cannot be read right now. Please try again shortly.",
    },
    "internal_error": {
        "fi": "Jokin meni vikaan. Yritä myöhemmin uudelleen.",
        "sv": "Något gick fel. Försök igen senare.",
        "en": "Something went wrong. Please try again later.",
    },
    "method_not_allowed": {
        "fi": "Toimintoa {method} ei voi käyttää tässä osoitteessa.",
        "sv": "Metoden {method} kan inte användas på den här adressen.",
        "en": "{method} is not allowed here.",
    },
    "payload_too_large": {
        "fi": "Pyynnön sisältö on liian suuri (enintään {maxBytes} tavua).",
        "sv": "Begärans innehåll är för stort (högst {maxBytes} byte).",
        "en": "The request body is too large (at most {maxBytes} bytes).",
    },
    "fields_invalid": {
        "fi": "Tarkista tiedot: {messages}",
        "sv": "Kontrollera uppgifterna: {messages}",
        "en": "Please check: {messages}",
    },
    # --- field messages (errors[].code) ---
    "body_required": {
        "fi": "Pyynnöstä puuttuu JSON-sisältö.",
        "sv": "Begäran saknar JSON-innehåll.",
        "en": "A JSON body is required.",
    },
    "content_type_json": {
        "fi": "Sisällön tyypin on oltava application/json.",
        "sv": "Innehållstypen måste vara application/json.",
        "en": "The content type must be application/json.",
    },
    "json_invalid": {
        "fi": "Sisältö ei ole kelvollista JSONia.",
        "sv": "Innehållet är inte giltig JSON.",
        "en": "The body is not valid JSON.",
    },
    "json_too_deep": {
        "fi": "Sisältö on sisäkkäistetty liian syvälle (enintään {maxDepth} tasoa).",
        "sv": "Innehållet är nästlat för djupt (högst {maxDepth} nivåer).",
        "en": "The body is nested too deeply (at most {maxDepth} levels).",
    },
    "body_not_object": {
        "fi": "Sisällön on oltava JSON-objekti.",
        "sv": "Innehållet måste vara ett JSON-objekt.",
        "en": "The body must be a JSON object.",
    },
    "unknown_field": {
        "fi": "Tuntematon kenttä {field}.",
        "sv": "Okänt fält {field}.",
        "en": "Unknown field {field}.",
    },
    "text_invalid": {
        "fi": "Tekstissä on merkkejä, joita ei voi tallentaa (ohjausmerkkejä tai rikkinäisiä merkkejä).",
        "sv": "Texten innehåller tecken som inte kan sparas (styrtecken eller trasiga tecken).",
        "en": "The text contains characters that cannot be stored (control or broken characters).",
    },
    "start_in_past": {
        "fi": "Ajan on oltava tulevaisuudessa.",
        "sv": "Tiden måste ligga i framtiden.",
        "en": "The time must be in the future.",
    },
    "start_too_soon": {
        "fi": "Aika on varattava vähintään {minutes} minuuttia etukäteen.",
        "sv": "Tiden måste bokas minst {minutes} minuter i förväg.",
        "en": "The time must be at least {minutes} minutes from now.",
    },
    "start_too_far": {
        "fi": "Aikaa voi varata enintään {days} päivän päähän.",
        "sv": "Tiden kan bokas högst {days} dagar framåt.",
        "en": "The time must be at most {days} days ahead.",
    },
    "start_off_grid": {
        "fi": "Ajan on alettava tasan tai {minutes} minuutin välein.",
        "sv": "Tiden måste börja jämnt, med {minutes} minuters mellanrum.",
        "en": "The time must be on the {minutes}-minute slot grid.",
    },
    "datetime_invalid": {
        "fi": "Ajankohdan on oltava RFC 3339 -muodossa aikavyöhykkeen kanssa, "
        "esim. 2026-12-01T10:00:00+02:00.",
        "sv": "Tidpunkten måste anges enligt RFC 3339 med tidszon, t.ex. 2026-12-01T10:00:00+02:00.",
        "en": "The time must be an RFC 3339 timestamp with an offset, e.g. 2026-12-01T10:00:00+02:00.",
    },
    "date_invalid": {
        "fi": "Päivämäärän on oltava muotoa 2026-12-01.",
        "sv": "Datumet måste anges som 2026-12-01.",
        "en": "The date must look like 2026-12-01.",
    },
    "duration_invalid": {
        "fi": "Keston on oltava jokin seuraavista (minuuttia): {choices}.",
        "sv": "Längden måste vara en av följande (minuter): {choices}.",
        "en": "The duration must be one of {choices} minutes.",
    },
    "topic_invalid": {
        "fi": "Valitse aihe aiheluettelosta.",
        "sv": "Välj ett ämne ur ämneslistan.",
        "en": "Choose a topic from the topic list.",
    },
    "topic_unknown": {
        "fi": "Aihetta ei tunneta.",
        "sv": "Ämnet är okänt.",
        "en": "Unknown topic.",
    },
    "channel_invalid": {
        "fi": "Valitse tapaamistapa: {channels}.",
        "sv": "Välj mötesform: {channels}.",
        "en": "Choose how to meet: {channels}.",
    },
    "language_invalid": {
        "fi": "Valitse kieli: suomi, ruotsi tai englanti.",
        "sv": "Välj språk: finska, svenska eller engelska.",
        "en": "Choose a language: Finnish, Swedish or English.",
    },
    "phone_invalid": {
        "fi": "Puhelinnumero ei kelpaa. Kirjoita se esimerkiksi muodossa 040 123 4567 tai +358 40 123 4567.",
        "sv": "Telefonnumret godtas inte. Skriv det till exempel som 040 123 4567 eller +358 40 123 4567.",
        "en": "The phone number is not valid. Write it e.g. as 040 123 4567 or +358 40 123 4567.",
    },
    "email_invalid": {
        "fi": "Sähköpostiosoite ei kelpaa.",
        "sv": "E-postadressen godtas inte.",
        "en": "The e-mail address is not valid.",
    },
    "extra_info_invalid": {
        "fi": "Lisätietojen on oltava tekstiä, enintään {max} merkkiä.",
        "sv": "Tilläggsuppgifterna måste vara text, högst {max} tecken.",
        "en": "The extra information must be text of at most {max} characters.",
    },
    "expert_id_invalid": {
        "fi": "Asiantuntijan tunnus ei kelpaa.",
        "sv": "Expertens id godtas inte.",
        "en": "The expert id is not valid.",
    },
    "expert_unknown": {
        "fi": "Asiantuntijaa ei tunneta.",
        "sv": "Experten är okänd.",
        "en": "Unknown expert.",
    },
    "expert_not_serving_topic": {
        "fi": "Asiantuntija ei palvele tässä aiheessa.",
        "sv": "Experten betjänar inte inom detta ämne.",
        "en": "This expert does not serve this topic.",
    },
    "expert_not_serving_language": {
        "fi": "Asiantuntija ei palvele tällä kielellä.",
        "sv": "Experten betjänar inte på detta språk.",
        "en": "This expert does not serve this language.",
    },
    "expert_not_serving_channel": {
        "fi": "Asiantuntija ei palvele tällä tapaamistavalla.",
        "sv": "Experten betjänar inte i denna mötesform.",
        "en": "This expert does not serve this channel.",
    },
    "expert_not_serving": {
        "fi": "Asiantuntija ei palvele tässä aiheessa, tällä kielellä ja tapaamistavalla.",
        "sv": "Experten betjänar inte inom detta ämne, på detta språk och i denna mötesform.",
        "en": "The expert does not serve this topic, language and channel.",
    },
    "outside_working_hours": {
        "fi": "Aika on asiantuntijan työajan ulkopuolella.",
        "sv": "Tiden ligger utanför expertens arbetstid.",
        "en": "The time is outside the expert's working hours.",
    },
    "no_expert_for_topic": {
        "fi": "Kukaan asiantuntija ei palvele tässä aiheessa tällä kielellä.",
        "sv": "Ingen expert betjänar inom detta ämne på detta språk.",
        "en": "No expert serves this topic in this language.",
    },
    "no_expert_at_time": {
        "fi": "Kukaan tämän aiheen asiantuntija ei ole töissä tähän aikaan.",
        "sv": "Ingen expert inom detta ämne arbetar vid denna tid.",
        "en": "No expert for this topic works at this time.",
    },
    "hold_id_invalid": {
        "fi": "Varatun ajan tunnus ei kelpaa.",
        "sv": "Den reserverade tidens id godtas inte.",
        "en": "The hold id is not valid.",
    },
    "hold_unknown": {
        "fi": "Varattua aikaa ei tunneta.",
        "sv": "Den reserverade tiden är okänd.",
        "en": "Unknown hold.",
    },
    "hold_mismatch": {
        "fi": "Varattu aika on eri alkuajalle tai kestolle.",
        "sv": "Den reserverade tiden gäller en annan starttid eller längd.",
        "en": "The hold is for another start or duration.",
    },
    "hold_other_expert": {
        "fi": "Varattu aika on toiselle asiantuntijalle.",
        "sv": "Den reserverade tiden gäller en annan expert.",
        "en": "The hold is for another expert.",
    },
    "change_empty": {
        "fi": "Kerro, mitä muutetaan: alkuaika, kesto, aihe tai asiantuntija.",
        "sv": "Ange vad som ändras: starttid, längd, ämne eller expert.",
        "en": "Give at least one of start, durationMinutes, topic, expertId.",
    },
    "booking_code_invalid": {
        "fi": "Varaustunnus on 8 merkkiä, esim. 2KMEVE6X.",
        "sv": "Bokningskoden har 8 tecken, t.ex. 2KMEVE6X.",
        "en": "The booking code has 8 characters, e.g. 2KMEVE6X.",
    },
    "key_invalid": {
        "fi": "Tunnuksessa saa olla 1–{max} merkkiä: kirjaimia A–Z, numeroita sekä merkkejä . _ : @ ja -.",
        "sv": "Nyckeln får ha 1–{max} tecken: bokstäverna A–Z, siffror samt tecknen . _ : @ och -.",
        "en": "The key may have 1–{max} characters: letters A–Z, digits and . _ : @ -.",
    },
    "code_invalid": {
        "fi": "Anna asiantuntijan antama {digits}-numeroinen tunniste.",
        "sv": "Ange den {digits}-siffriga kod som experten gav.",
        "en": "Enter the {digits}-digit code the expert gave.",
    },
    "duration_not_number": {
        "fi": "Keston on oltava kokonainen määrä minuutteja.",
        "sv": "Längden måste vara ett helt antal minuter.",
        "en": "The duration must be a whole number of minutes.",
    },
    "range_reversed": {
        "fi": "Loppupäivä ei voi olla ennen alkupäivää.",
        "sv": "Slutdatumet får inte ligga före startdatumet.",
        "en": "The end date must not be before the start date.",
    },
    "range_too_long": {
        "fi": "Aikaväli voi olla enintään {days} päivää.",
        "sv": "Intervallet får vara högst {days} dagar.",
        "en": "The range may span at most {days} days.",
    },
    "phase_invalid": {
        "fi": "Tuntematon tila.",
        "sv": "Okänd status.",
        "en": "Unknown phase.",
    },
    # The operators' view (http_triggers/ops.py).
    "attention_invalid": {
        "fi": "Arvon on oltava true tai false.",
        "sv": "Värdet måste vara true eller false.",
        "en": "The value must be true or false.",
    },
    "limit_invalid": {  # 100: adapters/ops_view.py MAX_PAGE
        "fi": "Sivun koon on oltava kokonaisluku 1–100.",
        "sv": "Sidstorleken måste vara ett heltal 1–100.",
        "en": "The page size must be a whole number from 1 to 100.",
    },
    "continuation_invalid": {
        "fi": "Jatkotunnus ei ole tämän rajapinnan antama.",
        "sv": "Fortsättningstoken kommer inte från detta gränssnitt.",
        "en": "The continuation is not one this API handed out.",
    },
}

# Parameter values that are words themselves.
VALUE_LABELS: dict[str, dict[str, dict[str, str]]] = {
    "phase": {
        "booked": {"fi": "varattu", "sv": "bokad", "en": "booked"},
        "join_open": {"fi": "liittyminen avoinna", "sv": "anslutning öppen", "en": "open to join"},
        "lobby": {"fi": "aulassa", "sv": "i lobbyn", "en": "in the lobby"},
        "code_issued": {"fi": "tunniste annettu", "sv": "kod utfärdad", "en": "code issued"},
        "verified": {"fi": "tunnistettu", "sv": "identifierad", "en": "verified"},
        "ended": {"fi": "päättynyt", "sv": "avslutad", "en": "ended"},
        "cancelled": {"fi": "peruttu", "sv": "avbokad", "en": "cancelled"},
        "no_show": {"fi": "asiakas ei saapunut", "sv": "kunden kom inte", "en": "no-show"},
    },
    "channels": {
        "online": {"fi": "verkkoneuvottelu", "sv": "onlinemöte", "en": "online meeting"},
        "phone": {"fi": "puhelu", "sv": "telefonsamtal", "en": "phone call"},
        "branch": {"fi": "konttoritapaaminen", "sv": "möte på kontoret", "en": "branch visit"},
    },
}
_AND = {"fi": "tai", "sv": "eller", "en": "or"}

_TAG = re.compile(r"^\s*([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q\s*=\s*([0-9.]{1,5}))?\s*$")


def negotiate(accept_language: str | None) -> str:
    """The best of fi/sv/en for an ``Accept-Language`` header (RFC 9110 §12.5.4); fi by default.

    Matching is on the primary subtag (``sv-FI`` is sv). Malformed entries are skipped rather
    than refused: a bad header must not turn a useful answer into an error.
    """
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for part in (accept_language or "")[:1024].split(",")[:32]:
        m = _TAG.match(part)
        if m is None:
            continue
        try:
            q = float(m.group(2)) if m.group(2) else 1.0
        except ValueError:
            continue
        primary = m.group(1).lower()
        if primary in LANGUAGES and 0 < q <= 1 and q > best_q:
            best, best_q = primary, q
    return best


def _value(name: str, value: Any, lang: str) -> str:
    labels = VALUE_LABELS.get(name)
    if labels is None:
        return str(value)
    items = value if isinstance(value, list | tuple) else [value]
    words = [labels.get(str(v), {}).get(lang, str(v)) for v in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {_AND[lang]} {words[-1]}"


def render(code: str, lang: str, params: Mapping[str, Any] | None = None) -> str:
    """The message ``code`` in ``lang``; unknown codes fall back to the code itself."""
    texts = MESSAGES.get(code)
    if texts is None:
        return code
    template = texts.get(lang) or texts[DEFAULT_LANGUAGE]
    values = {k: _value(k, v, lang) for k, v in (params or {}).items()}
    try:
        return template.format_map(values)
    except (KeyError, IndexError, ValueError):
        return template


def title(slug: str, lang: str) -> str:
    texts = TITLES.get(slug) or TITLES["bad-request"]
    return texts.get(lang) or texts[DEFAULT_LANGUAGE]
