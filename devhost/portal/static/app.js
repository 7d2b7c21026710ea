// Demo portal for online-meeting appointments: customer pages and the expert console.
// It uses only the public HTTP API (/api/...) and, when the devhost offers it, the
// virtual clock (/dev/clock). The dev "login" builds the Easy Auth principal header that
// App Service Authentication would add in Azure; it is accepted only in dev mode.

const ZONE = "Europe/Helsinki";
const LANGS = ["fi", "sv", "en"];
const POLL_EXPERT_MS = 2500;
const POLL_CUSTOMER_MS = 3000;
const ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier";

// ---------------------------------------------------------------------------- texts
const TEXTS = {
  fi: {
    skip: "Siirry sisältöön", brand: "Verkkoneuvottelu", langGroup: "Kieli",
    loginWho: "Kirjautunut", loginCustomer: "Asiakastunnus", loginApply: "Kirjaudu",
    customer: "Asiakas", expertPrefix: "Asiantuntija", navMain: "Päävalikko",
    navUpcoming: "Tulevat neuvottelut", navBook: "Varaa aika", navLookup: "Hae varaus",
    navExpert: "Asiantuntijan näkymä", devClock: "Virtuaaliaika", plusDay: "+1 vrk",
    loading: "Ladataan…", refresh: "Päivitä", back: "Takaisin",
    upcomingTitle: "Tulevat neuvottelut", noUpcoming: "Sinulla ei ole tulevia neuvotteluja.",
    bookingCode: "Varaustunnus", when: "Aika", duration: "Kesto", topic: "Aihe", expert: "Asiantuntija",
    phase: "Tila", channel: "Tapaamistapa", extraInfo: "Lisätiedot",
    start: "Aloita verkkoneuvottelu", startOpensAt: "Voit aloittaa neuvottelun {time} alkaen.",
    details: "Näytä tiedot", cancel: "Peru aika",
    cancelConfirm: "Haluatko varmasti perua ajan {code} ({when})?", cancelYes: "Kyllä, peru", cancelNo: "Älä peru",
    cancelled: "Aika {code} on peruttu.",
    meetingTitle: "Verkkoneuvottelu", join: "Liity neuvotteluun",
    joinHelp: "Teams avautuu uuteen ikkunaan. Odota aulassa, kunnes asiantuntija päästää sinut sisään.",
    joined: "Teams avattiin uuteen ikkunaan. Odota aulassa, kunnes asiantuntija päästää sinut sisään.",
    openTeams: "Avaa Teams", popupBlocked: "Jos Teams ei auennut, avaa se tästä:",
    tooEarly: "Neuvottelun voi aloittaa aikaisintaan {n} minuuttia ennen alkua, {time} alkaen.",
    notReady: "Neuvottelua valmistellaan. Yritetään uudelleen hetken kuluttua…",
    meetingOver: "Neuvottelu on päättynyt.",
    identTitle: "Tunnistautuminen",
    identHelp: "Asiantuntija kertoo sinulle neuvottelussa kertakäyttöisen tunnistuskoodin. Kirjoita se tähän.",
    identCode: "Tunnistuskoodi", confirm: "Vahvista",
    verified: "Tunnistautuminen onnistui. Voit palata Teamsiin.",
    wrongCode: "Koodi on väärä. Yrityksiä jäljellä: {n}.",
    expiredCode: "Koodi on vanhentunut. Pyydä asiantuntijalta uusi koodi.",
    lockedCode: "Liian monta väärää yritystä. Koodi on lukittu – pyydä asiantuntijalta uusi koodi.",
    lockedAccount: "Liian monta epäonnistunutta yritystä. Ota yhteyttä pankkiin.",
    waitCode: "Liian monta yritystä. Odota {s} sekuntia ja yritä uudelleen.",
    noCode: "Asiantuntija ei ole vielä antanut koodia.",
    codeFormat: "Kirjoita 6-numeroinen koodi.",
    bookTitle: "Varaa aika", kind: "Tapaamisen tapa", language: "Neuvottelun kieli",
    anyExpert: "Kuka tahansa asiantuntija", slot: "Vapaa aika", day: "Päivä",
    noSlots: "Ei vapaita aikoja tällä valinnalla.", phone: "Puhelinnumero",
    phoneHelp: "Kansainvälisessä muodossa, esim. +358401234567", email: "Sähköposti (vapaaehtoinen)",
    extraHelp: "Vapaaehtoinen", book: "Varaa aika", booked: "Aika varattu. Varaustunnus {code}.",
    chooseSlot: "Valitse vapaa aika.", slotsFallback: "Ajanvarauskalenteri ei vastannut – näytetään ehdotetut ajat.",
    minutes: "{n} min", fixErrors: "Tarkista merkityt kentät.",
    lookupTitle: "Hae varaus", lookupHelp: "Hae varauksesi varaustunnuksella ja puhelinnumerolla ilman kirjautumista.",
    lookup: "Hae", notFound: "Varausta ei löytynyt näillä tiedoilla.",
    tooManyLookups: "Liian monta hakua. Odota {s} sekuntia.",
    manageUntil: "Voit muuttaa tai perua varauksen ilman kirjautumista klo {time} asti.",
    changeTime: "Muuta aikaa", newTime: "Valitse uusi aika", saveTime: "Vahvista uusi aika",
    keepTime: "Pidä nykyinen aika", rescheduled: "Aika muutettu. Uusi aika: {when}.",
    notChanged: "Aikaa ei voitu muuttaa: {msg}", notCancelled: "Aikaa ei voitu perua: {msg}",
    tokenExpired: "Varauksen muokkausaika on päättynyt. Hae varaus uudelleen varaustunnuksella ja puhelinnumerolla.",
    joinWindowInfo: "Verkkoneuvotteluun voi liittyä kirjautuneena {n} minuuttia ennen alkua, {time} alkaen.",
    notChangeable: "Tätä varausta ei voi enää muuttaa verkossa.",
    expertTitle: "Päivän neuvottelut", date: "Päivä", today: "Tänään", noAppointments: "Ei neuvotteluja tänä päivänä.",
    waiting: "Asiakas odottaa aulassa", waitingCount: "Aulassa odottaa: {n}",
    issueCode: "Anna tunnistuskoodi", endMeeting: "Lopeta neuvottelu",
    endConfirm: "Lopetetaanko neuvottelu {code}?", endYes: "Lopeta", endNo: "Älä lopeta",
    ended: "Neuvottelu {code} lopetettu.", customerPhone: "Asiakkaan puhelin",
    codeFor: "Tunnistuskoodi neuvotteluun {code}", codeValid: "Voimassa {time} asti, {n} yritystä.",
    codeOnce: "Koodi näytetään vain kerran. Lue se asiakkaalle.", hide: "Piilota",
    expertOnly: "Valitse yläpalkista asiantuntija.", customerOnly: "Valitse yläpalkista asiakas.",
    signIn: "Kirjaudu sisään jatkaaksesi.", error: "Virhe: {msg}", network: "Yhteysvirhe. Yritä uudelleen.",
    phases: { booked: "Varattu", join_open: "Avoinna", lobby: "Aulassa", code_issued: "Koodi annettu",
      verified: "Tunnistettu", ended: "Päättynyt", cancelled: "Peruttu", no_show: "Ei saapunut" },
  },
  sv: {
    skip: "Hoppa till innehållet", brand: "Onlinemöte", langGroup: "Språk",
    loginWho: "Inloggad", loginCustomer: "Kund-id", loginApply: "Logga in",
    customer: "Kund", expertPrefix: "Expert", navMain: "Huvudmeny",
    navUpcoming: "Kommande möten", navBook: "Boka tid", navLookup: "Sök bokning",
    navExpert: "Expertvy", devClock: "Virtuell tid", plusDay: "+1 dygn",
    loading: "Laddar…", refresh: "Uppdatera", back: "Tillbaka",
    upcomingTitle: "Kommande möten", noUpcoming: "Du har inga kommande möten.",
    bookingCode: "Bokningskod", when: "Tid", duration: "Längd", topic: "Ämne", expert: "Expert",
    phase: "Status", channel: "Mötesform", extraInfo: "Tilläggsinformation",
    start: "Starta onlinemötet", startOpensAt: "Du kan starta mötet från {time}.",
    details: "Visa detaljer", cancel: "Avboka",
    cancelConfirm: "Vill du verkligen avboka tiden {code} ({when})?", cancelYes: "Ja, avboka", cancelNo: "Avboka inte",
    cancelled: "Tiden {code} har avbokats.",
    meetingTitle: "Onlinemöte", join: "Anslut till mötet",
    joinHelp: "Teams öppnas i ett nytt fönster. Vänta i lobbyn tills experten släpper in dig.",
    joined: "Teams öppnades i ett nytt fönster. Vänta i lobbyn tills experten släpper in dig.",
    openTeams: "Öppna Teams", popupBlocked: "Om Teams inte öppnades, öppna det här:",
    tooEarly: "Mötet kan startas tidigast {n} minuter före början, från {time}.",
    notReady: "Mötet förbereds. Vi försöker igen om en stund…",
    meetingOver: "Mötet har avslutats.",
    identTitle: "Identifiering",
    identHelp: "Experten läser upp en engångskod under mötet. Skriv in den här.",
    identCode: "Identifieringskod", confirm: "Bekräfta",
    verified: "Identifieringen lyckades. Du kan återgå till Teams.",
    wrongCode: "Fel kod. Försök kvar: {n}.",
    expiredCode: "Koden har gått ut. Be experten om en ny kod.",
    lockedCode: "För många felaktiga försök. Koden är låst – be experten om en ny kod.",
    lockedAccount: "För många misslyckade försök. Kontakta banken.",
    waitCode: "För många försök. Vänta {s} sekunder och försök igen.",
    noCode: "Experten har inte gett någon kod ännu.",
    codeFormat: "Skriv den 6-siffriga koden.",
    bookTitle: "Boka tid", kind: "Mötesform", language: "Mötesspråk",
    anyExpert: "Vilken expert som helst", slot: "Ledig tid", day: "Dag",
    noSlots: "Inga lediga tider med detta val.", phone: "Telefonnummer",
    phoneHelp: "I internationell form, t.ex. +358401234567", email: "E-post (frivilligt)",
    extraHelp: "Frivilligt", book: "Boka tid", booked: "Tiden är bokad. Bokningskod {code}.",
    chooseSlot: "Välj en ledig tid.", slotsFallback: "Tidsbokningen svarade inte – föreslagna tider visas.",
    minutes: "{n} min", fixErrors: "Kontrollera de markerade fälten.",
    lookupTitle: "Sök bokning", lookupHelp: "Sök din bokning med bokningskod och telefonnummer utan att logga in.",
    lookup: "Sök", notFound: "Ingen bokning hittades med dessa uppgifter.",
    tooManyLookups: "För många sökningar. Vänta {s} sekunder.",
    manageUntil: "Du kan ändra eller avboka bokningen utan att logga in till kl. {time}.",
    changeTime: "Ändra tid", newTime: "Välj en ny tid", saveTime: "Bekräfta den nya tiden",
    keepTime: "Behåll nuvarande tid", rescheduled: "Tiden har ändrats. Ny tid: {when}.",
    notChanged: "Tiden kunde inte ändras: {msg}", notCancelled: "Tiden kunde inte avbokas: {msg}",
    tokenExpired: "Tiden för att ändra bokningen har gått ut. Sök bokningen igen med bokningskod och telefonnummer.",
    joinWindowInfo: "Du kan ansluta till onlinemötet inloggad {n} minuter före början, från {time}.",
    notChangeable: "Den här bokningen kan inte längre ändras på nätet.",
    expertTitle: "Dagens möten", date: "Dag", today: "I dag", noAppointments: "Inga möten denna dag.",
    waiting: "Kunden väntar i lobbyn", waitingCount: "I lobbyn väntar: {n}",
    issueCode: "Ge identifieringskod", endMeeting: "Avsluta mötet",
    endConfirm: "Avsluta mötet {code}?", endYes: "Avsluta", endNo: "Avsluta inte",
    ended: "Mötet {code} avslutat.", customerPhone: "Kundens telefon",
    codeFor: "Identifieringskod för mötet {code}", codeValid: "Giltig till {time}, {n} försök.",
    codeOnce: "Koden visas bara en gång. Läs upp den för kunden.", hide: "Dölj",
    expertOnly: "Välj en expert i fältet överst.", customerOnly: "Välj kund i fältet överst.",
    signIn: "Logga in för att fortsätta.", error: "Fel: {msg}", network: "Nätverksfel. Försök igen.",
    phases: { booked: "Bokad", join_open: "Öppen", lobby: "I lobbyn", code_issued: "Kod given",
      verified: "Identifierad", ended: "Avslutad", cancelled: "Avbokad", no_show: "Kom inte" },
  },
  en: {
    skip: "Skip to content", brand: "Online meeting", langGroup: "Language",
    loginWho: "Signed in as", loginCustomer: "Customer id", loginApply: "Sign in",
    customer: "Customer", expertPrefix: "Expert", navMain: "Main menu",
    navUpcoming: "Upcoming meetings", navBook: "Book a meeting", navLookup: "Find a booking",
    navExpert: "Expert console", devClock: "Virtual time", plusDay: "+1 day",
    loading: "Loading…", refresh: "Refresh", back: "Back",
    upcomingTitle: "Upcoming meetings", noUpcoming: "You have no upcoming meetings.",
    bookingCode: "Booking code", when: "Time", duration: "Duration", topic: "Topic", expert: "Expert",
    phase: "Status", channel: "Meeting type", extraInfo: "Extra information",
    start: "Start online meeting", startOpensAt: "You can start the meeting from {time}.",
    details: "Show details", cancel: "Cancel booking",
    cancelConfirm: "Do you really want to cancel {code} ({when})?", cancelYes: "Yes, cancel", cancelNo: "Keep it",
    cancelled: "Booking {code} has been cancelled.",
    meetingTitle: "Online meeting", join: "Join meeting",
    joinHelp: "Teams opens in a new window. Wait in the lobby until the expert admits you.",
    joined: "Teams opened in a new window. Wait in the lobby until the expert admits you.",
    openTeams: "Open Teams", popupBlocked: "If Teams did not open, open it here:",
    tooEarly: "The meeting can be started at the earliest {n} minutes before it begins, from {time}.",
    notReady: "The meeting is being prepared. Trying again in a moment…",
    meetingOver: "The meeting has ended.",
    identTitle: "Identification",
    identHelp: "In the meeting the expert reads out a one-time identification code. Type it here.",
    identCode: "Identification code", confirm: "Confirm",
    verified: "You have been identified. You can return to Teams.",
    wrongCode: "The code is wrong. Attempts left: {n}.",
    expiredCode: "The code has expired. Ask the expert for a new code.",
    lockedCode: "Too many wrong attempts. The code is locked – ask the expert for a new code.",
    lockedAccount: "Too many failed attempts. Please contact the bank.",
    waitCode: "Too many attempts. Wait {s} seconds and try again.",
    noCode: "The expert has not given a code yet.",
    codeFormat: "Type the 6-digit code.",
    bookTitle: "Book a meeting", kind: "Kind of meeting", language: "Meeting language",
    anyExpert: "Any expert", slot: "Free time", day: "Day",
    noSlots: "No free times for this choice.", phone: "Phone number",
    phoneHelp: "In international form, e.g. +358401234567", email: "E-mail (optional)",
    extraHelp: "Optional", book: "Book", booked: "Booked. Your booking code is {code}.",
    chooseSlot: "Choose a free time.", slotsFallback: "The booking calendar did not answer – showing suggested times.",
    minutes: "{n} min", fixErrors: "Please check the marked fields.",
    lookupTitle: "Find a booking", lookupHelp: "Find your booking with its code and your phone number, without signing in.",
    lookup: "Find", notFound: "No booking matches these details.",
    tooManyLookups: "Too many searches. Wait {s} seconds.",
    manageUntil: "You can change or cancel this booking without signing in until {time}.",
    changeTime: "Change time", newTime: "Choose a new time", saveTime: "Confirm new time",
    keepTime: "Keep current time", rescheduled: "The time has been changed. New time: {when}.",
    notChanged: "The time could not be changed: {msg}", notCancelled: "The booking could not be cancelled: {msg}",
    tokenExpired: "Your time to change this booking has run out. Please look the booking up again with its code and your phone number.",
    joinWindowInfo: "Signed in, you can join the online meeting {n} minutes before it begins, from {time}.",
    notChangeable: "This booking can no longer be changed online.",
    expertTitle: "Appointments of the day", date: "Date", today: "Today", noAppointments: "No appointments on this day.",
    waiting: "Customer waiting in the lobby", waitingCount: "Waiting in the lobby: {n}",
    issueCode: "Issue code", endMeeting: "End meeting",
    endConfirm: "End meeting {code}?", endYes: "End", endNo: "Don't end",
    ended: "Meeting {code} ended.", customerPhone: "Customer's phone",
    codeFor: "Identification code for {code}", codeValid: "Valid until {time}, {n} attempts.",
    codeOnce: "The code is shown only once. Read it out to the customer.", hide: "Hide",
    expertOnly: "Choose an expert in the bar at the top.", customerOnly: "Choose a customer in the bar at the top.",
    signIn: "Sign in to continue.", error: "Error: {msg}", network: "Network error. Please try again.",
    phases: { booked: "Booked", join_open: "Open", lobby: "In the lobby", code_issued: "Code issued",
      verified: "Verified", ended: "Ended", cancelled: "Cancelled", no_show: "No-show" },
  },
};

// ---------------------------------------------------------------------------- state
const state = {
  lang: pick(localStorage.getItem("portal.lang"), LANGS, "fi"),
  // Dev login only: who the demo pretends to be. Never the identification code.
  who: JSON.parse(localStorage.getItem("portal.who") || "null") || { kind: "customer", id: "demo-customer" },
  experts: [],
  catalogue: null,
  clockAvailable: false,
  issued: new Map(), // booking code -> {code, expiresAt, attemptsAllowed}; memory only
  flash: null,
  lookup: null, // {booking, token, expiresAt} from the last lookup; memory only
  pollTimer: null,
  routeToken: 0,
};

function pick(value, allowed, fallback) { return allowed.includes(value) ? value : fallback; }

function t(key, vars = {}) {
  const text = TEXTS[state.lang][key] ?? TEXTS.fi[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
}
const phaseLabel = (p) => TEXTS[state.lang].phases[p] || p;
const localized = (obj) => (obj && typeof obj === "object" ? obj[state.lang] || obj.fi : obj) || "";

// ---------------------------------------------------------------------------- DOM helper
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const $ = (sel, root = document) => root.querySelector(sel);

function say(el, text, kind = "info") {
  el.textContent = text || "";
  el.dataset.kind = kind;
  el.hidden = !text;
}

// ---------------------------------------------------------------------------- time
const WEEKDAYS = {
  fi: ["sunnuntai", "maanantai", "tiistai", "keskiviikko", "torstai", "perjantai", "lauantai"],
  sv: ["söndag", "måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag"],
  en: ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"],
};
const EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
  "October", "November", "December"];
const partsFmt = new Intl.DateTimeFormat("en-GB", { timeZone: ZONE, hourCycle: "h23", year: "numeric",
  month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", weekday: "short" });
const WD = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

/** Helsinki wall-clock parts of an instant. */
function wall(date) {
  const p = Object.fromEntries(partsFmt.formatToParts(date).map((x) => [x.type, x.value]));
  return { y: +p.year, m: +p.month, d: +p.day, hh: +p.hour, mm: +p.minute, wd: WD[p.weekday] };
}
const pad = (n) => String(n).padStart(2, "0");
function fmtTime(iso) {
  const w = wall(new Date(iso));
  return state.lang === "en" ? `${pad(w.hh)}:${pad(w.mm)}` : `${w.hh}.${pad(w.mm)}`;
}
function fmtDate(w) {
  return state.lang === "en" ? `${WEEKDAYS.en[w.wd]} ${w.d} ${EN_MONTHS[w.m - 1]} ${w.y}`
    : `${WEEKDAYS[state.lang][w.wd]} ${w.d}.${w.m}.${w.y}`;
}
/** e.g. "maanantai 7.2.2022 klo 12.30" (the service's own conventions). */
function fmtDateTime(iso) {
  const w = wall(new Date(iso));
  const at = { fi: "klo", sv: "kl.", en: "at" }[state.lang];
  return `${fmtDate(w)} ${at} ${fmtTime(iso)}`;
}
const isoDay = (w) => `${w.y}-${pad(w.m)}-${pad(w.d)}`;
/** The UTC instant of a Helsinki wall time (two passes settle the DST offset). */
function fromWall(y, m, d, hh, mm) {
  const target = Date.UTC(y, m - 1, d, hh, mm);
  let guess = target;
  for (let i = 0; i < 2; i++) {
    const w = wall(new Date(guess));
    guess += target - Date.UTC(w.y, w.m - 1, w.d, w.hh, w.mm);
  }
  return new Date(guess);
}

async function serverNow() {
  if (state.clockAvailable) {
    const r = await api("GET", "/dev/clock", null, { auth: false });
    if (r.ok && r.data.now) return new Date(r.data.now);
  }
  return new Date();
}

// ---------------------------------------------------------------------------- API
function principal() {
  const claims = [{ typ: ID_CLAIM, val: state.who.id }];
  if (state.who.kind === "expert") claims.push({ typ: "roles", val: "Expert" });
  const json = JSON.stringify({ auth_typ: "aad", claims, name_typ: "name", role_typ: "roles" });
  return btoa(String.fromCharCode(...new TextEncoder().encode(json)));
}

async function api(method, path, body = null, { auth = true, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, cache: "no-store" };
  if (auth) init.headers["X-MS-CLIENT-PRINCIPAL"] = principal();
  if (body !== null) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    const res = await fetch(path, init);
    const text = await res.text();
    let data = {};
    try { data = text ? JSON.parse(text) : {}; } catch { data = { detail: text }; }
    return { ok: res.ok, status: res.status, data, retryAfter: Number(res.headers.get("Retry-After")) || 0 };
  } catch {
    return { ok: false, status: 0, data: { detail: t("network") }, retryAfter: 0 };
  }
}
const slug = (data) => String(data.type || "").split("/").pop();
function problemText(r) {
  if (r.status === 0) return t("network");
  if (r.status === 401) return t("signIn");
  return t("error", { msg: r.data.detail || r.data.title || r.status });
}

// ---------------------------------------------------------------------------- chrome
function renderChrome() {
  document.documentElement.lang = state.lang;
  document.title = `${t("brand")} – demo`;
  $("#skip-link").textContent = t("skip");
  $("#brand").textContent = t("brand");
  $("#langs").setAttribute("aria-label", t("langGroup"));
  for (const b of document.querySelectorAll("#langs button")) {
    b.setAttribute("aria-pressed", String(b.dataset.lang === state.lang));
  }
  $("#login-who-label").textContent = t("loginWho");
  $("#login-customer-label").textContent = t("loginCustomer");
  $("#login-apply").textContent = t("loginApply");
  const who = $("#login-who");
  who.replaceChildren(
    h("option", { value: "customer" }, t("customer")),
    ...state.experts.map((x) => h("option", { value: `expert:${x.id}` }, `${t("expertPrefix")}: ${x.displayName}`)),
  );
  who.value = state.who.kind === "expert" ? `expert:${state.who.id}` : "customer";
  if (!who.value) who.value = "customer";
  $("#login-customer").value = state.who.kind === "customer" ? state.who.id : "demo-customer";
  $("#login-customer-wrap").hidden = who.value !== "customer";
  const nav = $("#nav");
  nav.setAttribute("aria-label", t("navMain"));
  const links = state.who.kind === "expert"
    ? [["#/expert", t("navExpert")]]
    : [["#/", t("navUpcoming")], ["#/book", t("navBook")], ["#/lookup", t("navLookup")]];
  const current = location.hash || "#/";
  nav.replaceChildren(...links.map(([href, label]) =>
    h("a", { href, "aria-current": current === href ? "page" : null }, label)));
  $("#devclock-label").textContent = t("devClock");
  $("#advance-day").textContent = t("plusDay");
  $("#confirm-yes").textContent = "OK";
}

function wireChrome() {
  $("#langs").addEventListener("click", (e) => {
    const lang = e.target.closest("button")?.dataset.lang;
    if (!lang) return;
    state.lang = lang;
    localStorage.setItem("portal.lang", lang);
    route();
  });
  $("#login-who").addEventListener("change", (e) => {
    $("#login-customer-wrap").hidden = e.target.value !== "customer";
  });
  $("#login").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = $("#login-who").value;
    state.who = v === "customer"
      ? { kind: "customer", id: $("#login-customer").value.trim() || "demo-customer" }
      : { kind: "expert", id: v.slice("expert:".length) };
    localStorage.setItem("portal.who", JSON.stringify(state.who));
    state.issued.clear();
    const target = state.who.kind === "expert" ? "#/expert" : "#/";
    if (location.hash === target) route(); else location.hash = target;
  });
  $("#devclock").addEventListener("click", async (e) => {
    const minutes = Number(e.target.closest("button")?.dataset.advance);
    if (!minutes) return;
    const buttons = document.querySelectorAll("#devclock button");
    buttons.forEach((b) => { b.disabled = true; });
    await api("POST", "/dev/clock/advance", { minutes }, { auth: false });
    buttons.forEach((b) => { b.disabled = false; });
    await showClock();
    route({ keepFocus: true });
  });
}

async function showClock() {
  const r = await api("GET", "/dev/clock", null, { auth: false });
  state.clockAvailable = r.ok && Boolean(r.data.now);
  $("#devclock").hidden = !state.clockAvailable;
  if (state.clockAvailable) $("#devclock-now").textContent = fmtDateTime(r.data.now);
}

function confirmDialog(text, yes, no) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  $("#confirm-yes").textContent = yes;
  $("#confirm-no").textContent = no;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
  });
}

// ---------------------------------------------------------------------------- routing
const main = () => $("#main");

function page(title, ...children) {
  const heading = h("h1", { tabindex: "-1" }, title);
  main().replaceChildren(heading, ...children);
  return heading;
}

function poll(fn, ms) {
  clearInterval(state.pollTimer);
  state.pollTimer = setInterval(fn, ms);
}

async function route({ keepFocus = false } = {}) {
  clearInterval(state.pollTimer);
  const token = ++state.routeToken;
  renderChrome();
  const [path, arg] = (location.hash.replace(/^#\/?/, "") || "").split("/");
  const stale = () => token !== state.routeToken;
  const views = { "": upcomingView, book: bookView, meeting: meetingView, lookup: lookupView, expert: expertView };
  const view = views[path] || upcomingView;
  await view(decodeURIComponent(arg || ""), stale);
  if (!stale() && !keepFocus) {
    const heading = $("#main h1");
    if (heading && document.activeElement === document.body) heading.focus({ preventScroll: true });
  }
}

function flash(text) { state.flash = text; }
function flashBox() {
  const box = h("p", { class: "msg", role: "status", "aria-live": "polite", "data-testid": "flash" });
  say(box, state.flash, "ok");
  state.flash = null;
  return box;
}

function requireRole(kind) {
  if (state.who.kind === kind) return true;
  page(t(kind === "expert" ? "navExpert" : "navUpcoming"),
    h("p", { class: "msg", role: "status" }, t(kind === "expert" ? "expertOnly" : "customerOnly")));
  return false;
}

function summary(a) {
  const rows = [
    [t("bookingCode"), h("span", { class: "code", "data-testid": "booking-code" }, a.bookingCode)],
    [t("when"), fmtDateTime(a.start)],
    [t("duration"), t("minutes", { n: a.durationMinutes })],
    [t("channel"), channelLabel(a)],
    [t("topic"), topicLabel(a)],
    [t("expert"), a.expert?.displayName || "–"],
    [t("phase"), h("span", { class: `phase phase-${a.phase}`, "data-testid": "phase" }, phaseLabel(a.phase))],
  ];
  if (a.extraInfo) rows.push([t("extraInfo"), a.extraInfo]);
  return h("dl", { class: "facts" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}
function topicLabel(a) {
  const topic = state.catalogue?.topics.find((x) => x.id === a.topic?.id);
  return topic ? localized(topic.label) : a.topic?.label || "";
}
function channelLabel(a) {
  const ch = state.catalogue?.channels.find((x) => x.id === a.channel);
  return ch ? localized(ch.label) : a.channelLabel || a.channel;
}

// ---------------------------------------------------------------------------- customer: upcoming
async function upcomingView(_arg, stale) {
  if (!requireRole("customer")) return;
  const list = h("div", { class: "cards", "aria-busy": "true" }, t("loading"));
  const msg = h("p", { class: "msg", role: "status", "aria-live": "polite", hidden: true });
  page(t("upcomingTitle"), flashBox(), msg,
    h("div", { class: "toolbar" }, h("button", { type: "button", onclick: () => load() }, t("refresh"))), list);
  let last = "";
  async function load() {
    const r = await api("GET", "/api/appointments");
    if (stale()) return;
    if (!r.ok) { say(msg, problemText(r), "error"); return; }
    const json = JSON.stringify(r.data.appointments);
    if (json === last) return;
    last = json;
    const focusKey = document.activeElement?.dataset?.focusKey;
    list.removeAttribute("aria-busy");
    const items = r.data.appointments || [];
    list.replaceChildren(...(items.length ? items.map(card) : [h("p", {}, t("noUpcoming"))]));
    if (focusKey) list.querySelector(`[data-focus-key="${focusKey}"]`)?.focus();
  }
  function card(a) {
    const actions = h("div", { class: "actions" });
    if (a.channel === "online") {
      actions.append(h("button", {
        type: "button", class: "primary", disabled: !a.canJoin, "data-focus-key": `start-${a.bookingCode}`,
        "aria-describedby": a.canJoin ? null : `opens-${a.bookingCode}`,
        onclick: () => { location.hash = `#/meeting/${a.bookingCode}`; },
      }, t("start")));
    }
    actions.append(
      h("a", { class: "button", href: `#/meeting/${a.bookingCode}` }, t("details")),
      h("button", { type: "button", class: "danger", "data-focus-key": `cancel-${a.bookingCode}`,
        onclick: () => cancelBooking(a, () => { last = ""; load(); }) }, t("cancel")),
    );
    return h("article", { class: `card${a.canJoin ? " joinable" : ""}`, "data-booking": a.bookingCode },
      h("h2", {}, fmtDateTime(a.start)),
      summary(a),
      a.channel === "online" && !a.canJoin && a.joinWindowOpensAt && !["ended", "cancelled", "no_show"].includes(a.phase)
        ? h("p", { class: "hint", id: `opens-${a.bookingCode}` }, t("startOpensAt", { time: fmtDateTime(a.joinWindowOpensAt) }))
        : null,
      actions);
  }
  await load();
  poll(load, POLL_CUSTOMER_MS * 2);
}

async function cancelBooking(a, after) {
  const ok = await confirmDialog(t("cancelConfirm", { code: a.bookingCode, when: fmtDateTime(a.start) }),
    t("cancelYes"), t("cancelNo"));
  if (!ok) return;
  const r = await api("DELETE", `/api/appointments/${encodeURIComponent(a.bookingCode)}`);
  if (r.ok) flash(t("cancelled", { code: a.bookingCode }));
  else flash(problemText(r));
  if (after) after();
  if (location.hash !== "#/") location.hash = "#/"; else route();
}

// ---------------------------------------------------------------------------- customer: meeting page
async function meetingView(code, stale) {
  if (!requireRole("customer")) return;
  const facts = h("div", {}, t("loading"));
  const joinMsg = h("p", { class: "msg", role: "status", "aria-live": "polite", hidden: true, "data-testid": "join-msg" });
  const teamsLink = h("p", { hidden: true });
  const joinBtn = h("button", { type: "button", class: "primary big", onclick: join }, t("join"));
  const joinSection = h("section", { class: "panel", "aria-labelledby": "join-title" },
    h("h2", { id: "join-title" }, t("meetingTitle")), h("p", { class: "hint" }, t("joinHelp")), joinBtn, joinMsg, teamsLink);
  const codeInput = h("input", { id: "ident-code", name: "code", inputmode: "numeric", autocomplete: "one-time-code",
    pattern: "[0-9 ]*", maxlength: "12", required: true, "aria-describedby": "ident-help ident-msg", class: "otp" });
  const identMsg = h("p", { id: "ident-msg", class: "msg", role: "status", "aria-live": "assertive", hidden: true,
    "data-testid": "ident-msg" });
  const confirmBtn = h("button", { type: "submit", class: "primary" }, t("confirm"));
  const identForm = h("form", { class: "ident", onsubmit: verify, novalidate: true },
    h("label", { for: "ident-code" }, t("identCode")), h("div", { class: "row" }, codeInput, confirmBtn));
  const verifiedBox = h("p", { class: "msg verified", role: "status", "aria-live": "polite", hidden: true,
    "data-testid": "verified" });
  const identSection = h("section", { class: "panel", "aria-labelledby": "ident-title" },
    h("h2", { id: "ident-title" }, t("identTitle")), h("p", { id: "ident-help", class: "hint" }, t("identHelp")),
    identForm, identMsg, verifiedBox);
  const cancelBtn = h("button", { type: "button", class: "danger", hidden: true }, t("cancel"));
  const errorBox = h("p", { class: "msg", role: "alert", hidden: true });
  page(t("meetingTitle"), h("p", {}, h("a", { href: "#/" }, `← ${t("back")}`)), errorBox, facts,
    joinSection, identSection, h("div", { class: "actions" }, cancelBtn));
  let current = null;
  let retryTimer = null;

  function showVerified() {
    identForm.hidden = true;
    say(identMsg, "");
    say(verifiedBox, t("verified"), "ok");
  }
  async function load() {
    const r = await api("GET", `/api/appointments/${encodeURIComponent(code)}`);
    if (stale()) return;
    if (!r.ok) { say(errorBox, r.status === 404 ? t("notFound") : problemText(r), "error"); facts.replaceChildren(); return; }
    const a = r.data;
    const changed = JSON.stringify(a) !== JSON.stringify(current);
    current = a;
    if (!changed) return;
    facts.replaceChildren(summary(a));
    const online = a.channel === "online";
    const over = ["ended", "cancelled", "no_show"].includes(a.phase);
    joinSection.hidden = !online;
    identSection.hidden = !online || over || a.phase === "booked";
    joinBtn.disabled = over;
    if (over && online) say(joinMsg, t("meetingOver"), "info");
    if (a.phase === "verified") showVerified();
    cancelBtn.hidden = !["booked", "join_open"].includes(a.phase);
    cancelBtn.onclick = () => cancelBooking(a);
  }
  async function join() {
    clearTimeout(retryTimer);
    joinBtn.disabled = true;
    const r = await api("POST", `/api/appointments/${encodeURIComponent(code)}/join`);
    joinBtn.disabled = false;
    if (stale()) return;
    if (r.ok && r.data.joinUrl) {
      // With "noopener" open() returns null either way, so the link is always offered too.
      window.open(r.data.joinUrl, "_blank", "noopener");
      teamsLink.replaceChildren(`${t("popupBlocked")} `,
        h("a", { href: r.data.joinUrl, target: "_blank", rel: "noopener" }, t("openTeams")));
      teamsLink.hidden = false;
      say(joinMsg, t("joined"), "ok");
      identSection.hidden = false;
      codeInput.focus();
      await load();
      return;
    }
    const kind = slug(r.data);
    if (r.status === 409 && r.data.joinWindowOpensAt) {
      if (!current) await load(); // clicked before the page's first load: the view has joinWindowMinutes
      if (stale()) return;
      const time = fmtDateTime(r.data.joinWindowOpensAt);
      const n = r.data.joinWindowMinutes ?? current?.joinWindowMinutes;
      say(joinMsg, n ? t("tooEarly", { n, time }) : t("startOpensAt", { time }), "error");
    } else if (r.status === 409 && kind === "meeting-not-ready") {
      say(joinMsg, t("notReady"), "info");
      retryTimer = setTimeout(() => { if (!stale()) join(); }, (r.retryAfter || 3) * 1000);
    } else if (r.status === 410) {
      say(joinMsg, t("meetingOver"), "error");
    } else {
      say(joinMsg, problemText(r), "error");
    }
  }
  async function verify(e) {
    e.preventDefault();
    const value = codeInput.value.replace(/\s+/g, "");
    if (!/^\d{6,}$/.test(value)) { say(identMsg, t("codeFormat"), "error"); codeInput.focus(); return; }
    confirmBtn.disabled = true;
    const r = await api("POST", `/api/appointments/${encodeURIComponent(code)}/identity-verification`, { code: value });
    confirmBtn.disabled = false;
    if (stale()) return;
    codeInput.value = "";
    if (r.ok && r.data.verified) { showVerified(); await load(); return; }
    const kind = slug(r.data);
    const text = r.status === 422 && kind === "wrong-code" ? t("wrongCode", { n: r.data.attemptsLeft ?? 0 })
      : r.status === 422 ? t("codeFormat")
      : r.status === 410 ? t("expiredCode")
      : r.status === 423 && r.data.reason === "too_many_failures" ? t("lockedAccount")
      : r.status === 423 ? t("lockedCode")
      : r.status === 429 ? t("waitCode", { s: r.retryAfter || 30 })
      : r.status === 409 ? t("noCode")
      : problemText(r);
    say(identMsg, text, "error");
    codeInput.focus();
    await load(); // a lock sends the meeting back to the lobby
  }
  await load();
  poll(load, POLL_CUSTOMER_MS);
}

// ---------------------------------------------------------------------------- customer: booking
async function catalogue() {
  if (!state.catalogue) {
    const r = await api("GET", "/api/topics", null, { auth: false });
    if (r.ok) state.catalogue = r.data;
  }
  return state.catalogue;
}

async function bookView(_arg, stale) {
  if (!requireRole("customer")) return;
  const cat = await catalogue();
  if (stale()) return;
  if (!cat) { page(t("bookTitle"), h("p", { class: "msg", role: "alert" }, t("network"))); return; }
  const field = (id, label, control, help) => h("div", { class: "field", "data-field": id },
    h("label", { for: id }, label), control,
    help ? h("p", { class: "hint", id: `${id}-help` }, help) : null,
    h("p", { class: "field-error", id: `${id}-error`, hidden: true }));
  const channels = h("fieldset", { class: "field choice", "data-field": "channel" },
    h("legend", {}, t("kind")),
    cat.channels.map((c, i) => h("label", { class: "chip" },
      h("input", { type: "radio", name: "channel", value: c.id, checked: i === 0 }), localized(c.label))),
    h("p", { class: "field-error", id: "channel-error", hidden: true }));
  const groups = new Map();
  for (const topic of cat.topics) {
    const g = localized(topic.group);
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(topic);
  }
  const topic = h("select", { id: "topic", name: "topic" }, [...groups].map(([g, ts]) =>
    h("optgroup", { label: g }, ts.map((x) => h("option", { value: x.id }, localized(x.name))))));
  const language = h("select", { id: "language", name: "language" },
    LANGS.map((l) => h("option", { value: l, selected: l === state.lang }, { fi: "suomi", sv: "svenska", en: "English" }[l])));
  const expert = h("select", { id: "expertId", name: "expertId" });
  const duration = h("select", { id: "durationMinutes", name: "durationMinutes" },
    cat.durations.map((d) => h("option", { value: String(d), selected: d === 45 }, t("minutes", { n: d }))));
  const day = h("select", { id: "slot-day", name: "day" });
  const slotNote = h("p", { class: "hint", role: "status", "aria-live": "polite", hidden: true });
  const slotList = h("div", { class: "slots", role: "radiogroup", "aria-labelledby": "slot-legend" });
  const slots = h("fieldset", { class: "field", "data-field": "start" },
    h("legend", { id: "slot-legend" }, t("slot")),
    h("label", { for: "slot-day" }, t("day")), day, slotNote, slotList,
    h("p", { class: "field-error", id: "start-error", hidden: true }));
  const phone = h("input", { id: "phone", name: "phone", type: "tel", autocomplete: "tel", required: true,
    inputmode: "tel", placeholder: "+358401234567", "aria-describedby": "phone-help phone-error" });
  const email = h("input", { id: "email", name: "email", type: "email", autocomplete: "email",
    "aria-describedby": "email-error" });
  const extra = h("textarea", { id: "extraInfo", name: "extraInfo", rows: "3", maxlength: "1000",
    "aria-describedby": "extraInfo-help extraInfo-error" });
  const formMsg = h("p", { class: "msg", role: "alert", hidden: true, "data-testid": "book-msg" });
  const submit = h("button", { type: "submit", class: "primary big" }, t("book"));
  const form = h("form", { class: "book", novalidate: true, onsubmit: book },
    channels,
    field("topic", t("topic"), topic),
    field("language", t("language"), language),
    field("expertId", t("expert"), expert),
    field("durationMinutes", t("duration"), duration),
    slots,
    field("phone", t("phone"), phone, t("phoneHelp")),
    field("email", t("email"), email),
    field("extraInfo", t("extraInfo"), extra, t("extraHelp")),
    formMsg, submit);
  page(t("bookTitle"), form);

  let days = [];
  let idempotency = { key: crypto.randomUUID(), body: "" };
  const chosenChannel = () => form.querySelector("input[name=channel]:checked")?.value;

  async function loadExperts() {
    const q = new URLSearchParams({ topic: topic.value, language: language.value, channel: chosenChannel() });
    const r = await api("GET", `/api/experts?${q}`, null, { auth: false });
    if (stale()) return;
    const list = r.ok ? r.data.experts : [];
    const keep = expert.value;
    expert.replaceChildren(h("option", { value: "any" }, t("anyExpert")),
      ...list.map((x) => h("option", { value: x.id }, `${x.displayName}${x.title ? ` – ${x.title}` : ""}`)));
    expert.value = list.some((x) => x.id === keep) ? keep : "any";
    await loadSlots();
  }
  async function loadSlots() {
    const now = await serverNow();
    const from = wall(now);
    const until = wall(new Date(now.getTime() + 14 * 86400000));
    const q = new URLSearchParams({ topic: topic.value, channel: chosenChannel(), language: language.value,
      duration: duration.value, from: isoDay(from), to: isoDay(until) });
    if (expert.value !== "any") q.set("expert", expert.value);
    const r = await api("GET", `/api/slots?${q}`, null, { auth: false });
    if (stale()) return;
    if (r.ok) {
      days = normalizeSlots(r.data);
      say(slotNote, "");
    } else if ([404, 405, 501].includes(r.status)) {
      days = fallbackSlots(now, Number(duration.value));
      say(slotNote, t("slotsFallback"), "info");
    } else {
      days = [];
      say(slotNote, problemText(r), "error");
    }
    const keep = day.value;
    day.replaceChildren(...days.map((d) => h("option", { value: d.date }, d.label || fmtDate(wall(fromIsoDay(d.date))))));
    if (days.some((d) => d.date === keep)) day.value = keep;
    renderSlots();
  }
  function renderSlots() {
    const d = days.find((x) => x.date === day.value);
    const list = d ? d.slots : [];
    slotList.replaceChildren(...(list.length ? list.map((s) => h("label", { class: "chip slot" },
      h("input", { type: "radio", name: "slot", value: s.start, "data-expert": s.expertId || "" }),
      fmtTime(s.start), s.expertName && expert.value === "any" ? h("small", {}, ` ${s.expertName}`) : null))
      : [h("p", {}, t("noSlots"))]));
  }
  for (const el of [topic, language]) el.addEventListener("change", loadExperts);
  channels.addEventListener("change", loadExperts);
  expert.addEventListener("change", loadSlots);
  duration.addEventListener("change", loadSlots);
  day.addEventListener("change", renderSlots);
  await loadExperts();

  async function book(e) {
    e.preventDefault();
    for (const el of form.querySelectorAll(".field-error")) { el.hidden = true; el.textContent = ""; }
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    say(formMsg, "");
    const slot = form.querySelector("input[name=slot]:checked");
    if (!slot) { fieldError("start", t("chooseSlot")); say(formMsg, t("fixErrors"), "error"); slotList.querySelector("input")?.focus(); return; }
    const body = {
      expertId: expert.value === "any" && slot.dataset.expert ? slot.dataset.expert : expert.value,
      topic: topic.value, channel: chosenChannel(), start: slot.value,
      durationMinutes: Number(duration.value), language: language.value, phone: phone.value.replace(/[\s-]/g, ""),
    };
    if (email.value.trim()) body.email = email.value.trim();
    if (extra.value.trim()) body.extraInfo = extra.value.trim();
    const json = JSON.stringify(body);
    if (json !== idempotency.body) idempotency = { key: crypto.randomUUID(), body: json };
    submit.disabled = true;
    const r = await api("POST", "/api/appointments", body, { headers: { "Idempotency-Key": idempotency.key } });
    submit.disabled = false;
    if (stale()) return;
    if (r.ok) {
      flash(t("booked", { code: r.data.bookingCode }));
      location.hash = "#/";
      return;
    }
    for (const err of r.data.errors || []) fieldError(err.field, err.message);
    say(formMsg, r.data.errors?.length ? `${t("fixErrors")} ${r.data.detail || ""}` : problemText(r), "error");
    if (r.status === 409) loadSlots();
    const first = form.querySelector("[aria-invalid=true]");
    (first || formMsg).focus?.();
  }
  function fieldError(name, message) {
    const box = $(`#${CSS.escape(name)}-error`, form);
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
    $(`#${CSS.escape(name)}`, form)?.setAttribute("aria-invalid", "true");
  }
}

function fromIsoDay(s) {
  const [y, m, d] = s.split("-").map(Number);
  return fromWall(y, m, d, 12, 0);
}

/** Accepts {days:[{date,label,slots:[...]}]} or a flat {slots:[...]}; dedupes starts. */
function normalizeSlots(data) {
  const flat = Array.isArray(data.days) ? data.days.flatMap((d) => d.slots || []) : data.slots || [];
  const byDay = new Map();
  for (const s of flat) {
    if (!s?.start) continue;
    const date = isoDay(wall(new Date(s.start)));
    if (!byDay.has(date)) byDay.set(date, new Map());
    const seen = byDay.get(date);
    // Either {expertId, expertName} or {experts:[{id, displayName}]}: the first free expert.
    const first = Array.isArray(s.experts) ? s.experts[0] || {} : {};
    if (!seen.has(s.start)) {
      seen.set(s.start, { start: s.start, expertId: s.expertId || first.id, expertName: s.expertName || first.displayName });
    }
  }
  return [...byDay].sort(([a], [b]) => a.localeCompare(b)).map(([date, m]) => ({
    date, slots: [...m.values()].sort((a, b) => a.start.localeCompare(b.start)),
  }));
}

/** Candidate starts on the 30-minute grid, 09:00–16:00 Helsinki, weekdays, from 2 h ahead. */
function fallbackSlots(now, durationMinutes) {
  const earliest = now.getTime() + 120 * 60000;
  const out = [];
  for (let i = 0; out.length < 7 && i < 14; i++) {
    const w = wall(new Date(now.getTime() + i * 86400000));
    if (w.wd === 0 || w.wd === 6) continue;
    const slots = [];
    for (let minute = 9 * 60; minute + durationMinutes <= 16 * 60; minute += 30) {
      const start = fromWall(w.y, w.m, w.d, Math.floor(minute / 60), minute % 60);
      if (start.getTime() >= earliest) slots.push({ start: start.toISOString().replace(".000Z", "Z") });
    }
    if (slots.length) out.push({ date: isoDay(w), slots });
  }
  return out;
}

// ---------------------------------------------------------------------------- lookup
const CHANGEABLE = ["booked", "join_open"];
const OVER = ["ended", "cancelled", "no_show"];

/** Find a booking by code + phone without a login; the lookup's short-lived manage token then
 * lets the visitor change the time or cancel that one booking (X-Booking-Token, no principal). */
async function lookupView(_arg, stale) {
  const code = h("input", { id: "lookup-code", autocomplete: "off", spellcheck: "false", maxlength: "8",
    required: true, class: "code-input" });
  const phone = h("input", { id: "lookup-phone", type: "tel", autocomplete: "tel", required: true,
    placeholder: "+358401234567", "aria-describedby": "lookup-phone-help" });
  const msg = h("p", { class: "msg", role: "status", "aria-live": "polite", hidden: true, "data-testid": "lookup-msg" });
  // Outlives the card's re-rendering, so screen readers announce every outcome.
  const manageMsg = h("p", { class: "msg", role: "status", "aria-live": "polite", hidden: true,
    "data-testid": "manage-msg" });
  const result = h("div", {});
  const submit = h("button", { type: "submit", class: "primary" }, t("lookup"));
  const form = h("form", { class: "book", novalidate: true, onsubmit: find },
    h("div", { class: "field" }, h("label", { for: "lookup-code" }, t("bookingCode")), code),
    h("div", { class: "field" }, h("label", { for: "lookup-phone" }, t("phone")), phone,
      h("p", { class: "hint", id: "lookup-phone-help" }, t("phoneHelp"))),
    submit);
  page(t("lookupTitle"), h("p", {}, t("lookupHelp")), form, msg, manageMsg, result);
  if (state.lookup) show(); // e.g. after switching the language

  async function find(e) {
    e.preventDefault();
    say(msg, "");
    say(manageMsg, "");
    result.replaceChildren();
    state.lookup = null;
    submit.disabled = true;
    const r = await api("POST", "/api/appointments/lookup",
      { bookingCode: code.value.trim().toUpperCase(), phone: phone.value.replace(/[\s-]/g, "") }, { auth: false });
    submit.disabled = false;
    if (stale()) return;
    if (r.ok) {
      const { manageToken, manageTokenExpiresAt, ...booking } = r.data;
      state.lookup = { booking, token: manageToken || null, expiresAt: manageTokenExpiresAt || null };
      show();
      $("#lookup-when", result)?.focus();
      return;
    }
    say(msg, r.status === 404 || r.status === 422 ? t("notFound")
      : r.status === 429 ? t("tooManyLookups", { s: r.retryAfter || 60 }) : problemText(r), "error");
  }

  function manage(method, body = null) {
    const { booking, token } = state.lookup;
    return api(method, `/api/appointments/${encodeURIComponent(booking.bookingCode)}`, body,
      { auth: false, headers: { "X-Booking-Token": token } });
  }
  function detailOf(r) {
    return r.status === 0 ? t("network") : r.data.detail || r.data.title || String(r.status);
  }
  function expired() {
    state.lookup = null;
    result.replaceChildren();
    say(manageMsg, t("tokenExpired"), "error");
    code.focus();
  }
  async function refresh() {
    const r = await manage("GET");
    if (stale() || !state.lookup) return;
    if (r.status === 401) { expired(); return; }
    if (r.ok) { state.lookup.booking = r.data; show(); }
  }

  function show() {
    const a = state.lookup.booking;
    const over = OVER.includes(a.phase);
    const changeable = CHANGEABLE.includes(a.phase) && Boolean(state.lookup.token);
    const changeBtn = h("button", { type: "button", "aria-expanded": "false", "aria-controls": "reschedule",
      onclick: openReschedule }, t("changeTime"));
    const cancelBtn = h("button", { type: "button", class: "danger", onclick: cancel }, t("cancel"));
    const day = h("select", { id: "new-slot-day", name: "day" });
    const slotNote = h("p", { class: "hint", role: "status", "aria-live": "polite", hidden: true });
    const slotList = h("div", { class: "slots", role: "radiogroup", "aria-labelledby": "new-slot-legend" });
    const save = h("button", { type: "submit", class: "primary" }, t("saveTime"));
    const keep = h("button", { type: "button", onclick: closeReschedule }, t("keepTime"));
    const panel = h("form", { id: "reschedule", class: "reschedule", hidden: true, novalidate: true,
      "aria-labelledby": "new-slot-legend", onsubmit: reschedule,
      onkeydown: (e) => { if (e.key === "Escape") { e.preventDefault(); closeReschedule(); } } },
      h("fieldset", { class: "field" }, h("legend", { id: "new-slot-legend" }, t("newTime")),
        h("label", { for: "new-slot-day" }, t("day")), day, slotNote, slotList),
      h("div", { class: "actions" }, save, keep));
    const joinInfo = a.channel === "online" && !over && a.joinWindowOpensAt
      ? (a.joinWindowMinutes
        ? t("joinWindowInfo", { n: a.joinWindowMinutes, time: fmtDateTime(a.joinWindowOpensAt) })
        : t("startOpensAt", { time: fmtDateTime(a.joinWindowOpensAt) }))
      : null;
    const card = h("section", { class: "card", "aria-labelledby": "lookup-when", "data-booking": a.bookingCode },
      h("h2", { id: "lookup-when", tabindex: "-1", "data-testid": "lookup-when" }, fmtDateTime(a.start)),
      summary(a),
      joinInfo ? h("p", { class: "hint" }, joinInfo) : null,
      changeable && state.lookup.expiresAt
        ? h("p", { class: "hint" }, t("manageUntil", { time: fmtTime(state.lookup.expiresAt) })) : null,
      !changeable && !over ? h("p", { class: "hint" }, t("notChangeable")) : null,
      changeable ? h("div", { class: "actions" }, changeBtn, cancelBtn) : null,
      changeable ? panel : null);
    result.replaceChildren(card);

    let days = [];
    async function loadSlots() {
      say(slotNote, t("loading"));
      slotList.replaceChildren();
      const now = await serverNow();
      const q = new URLSearchParams({ topic: a.topic?.id || "", channel: a.channel, expert: a.expert?.id || "any",
        language: a.language, duration: String(a.durationMinutes), from: isoDay(wall(now)),
        to: isoDay(wall(new Date(now.getTime() + 14 * 86400000))) });
      const r = await api("GET", `/api/slots?${q}`, null, { auth: false });
      if (stale() || !card.isConnected) return;
      days = r.ok ? normalizeSlots(r.data)
        .map((d) => ({ ...d, slots: d.slots.filter((s) => Date.parse(s.start) !== Date.parse(a.start)) }))
        .filter((d) => d.slots.length) : [];
      say(slotNote, r.ok ? "" : problemText(r), "error");
      const keepDay = day.value;
      day.replaceChildren(...days.map((d) => h("option", { value: d.date }, fmtDate(wall(fromIsoDay(d.date))))));
      if (days.some((d) => d.date === keepDay)) day.value = keepDay;
      renderSlots();
    }
    function renderSlots() {
      const list = days.find((x) => x.date === day.value)?.slots || [];
      slotList.replaceChildren(...(list.length ? list.map((s) => h("label", { class: "chip slot" },
        h("input", { type: "radio", name: "new-slot", value: s.start }), fmtTime(s.start)))
        : [h("p", {}, t("noSlots"))]));
    }
    day.addEventListener("change", renderSlots);

    async function openReschedule() {
      panel.hidden = false;
      changeBtn.setAttribute("aria-expanded", "true");
      await loadSlots();
      if (!card.isConnected) return;
      (slotList.querySelector("input") || day).focus();
    }
    function closeReschedule() {
      panel.hidden = true;
      changeBtn.setAttribute("aria-expanded", "false");
      changeBtn.focus();
    }
    async function reschedule(e) {
      e.preventDefault();
      const slot = panel.querySelector("input[name=new-slot]:checked");
      if (!slot) {
        say(manageMsg, t("chooseSlot"), "error");
        (slotList.querySelector("input") || day).focus();
        return;
      }
      save.disabled = true;
      const r = await manage("PATCH", { start: slot.value });
      save.disabled = false;
      if (stale() || !state.lookup) return;
      if (r.ok) {
        state.lookup.booking = r.data;
        show();
        say(manageMsg, t("rescheduled", { when: fmtDateTime(r.data.start) }), "ok");
        $("#lookup-when", result)?.focus();
        return;
      }
      if (r.status === 401) { expired(); return; }
      say(manageMsg, t("notChanged", { msg: detailOf(r) }), "error");
      if (r.status === 409) await loadSlots(); // taken meanwhile: offer what is free now
      else if (r.status === 410) await refresh();
    }
    async function cancel() {
      const ok = await confirmDialog(t("cancelConfirm", { code: a.bookingCode, when: fmtDateTime(a.start) }),
        t("cancelYes"), t("cancelNo"));
      if (!ok || stale() || !state.lookup) return;
      cancelBtn.disabled = true;
      const r = await manage("DELETE");
      cancelBtn.disabled = false;
      if (stale() || !state.lookup) return;
      if (r.ok) {
        state.lookup.booking = r.data;
        show();
        say(manageMsg, t("cancelled", { code: a.bookingCode }), "ok");
        $("#lookup-when", result)?.focus();
        return;
      }
      if (r.status === 401) { expired(); return; }
      say(manageMsg, t("notCancelled", { msg: detailOf(r) }), "error");
      if (r.status === 410) await refresh();
    }
  }
}

// ---------------------------------------------------------------------------- expert console
async function expertView(_arg, stale) {
  if (!requireRole("expert")) return;
  const today = isoDay(wall(await serverNow()));
  if (stale()) return;
  const date = h("input", { id: "expert-date", type: "date", value: state.expertDate || today });
  const todayBtn = h("button", { type: "button", onclick: () => { date.value = today; changed(); } }, t("today"));
  const waitingBox = h("p", { class: "msg waiting-count", role: "status", "aria-live": "polite", hidden: true,
    "data-testid": "waiting-count" });
  const msg = h("p", { class: "msg", role: "status", "aria-live": "polite", hidden: true, "data-testid": "expert-msg" });
  const list = h("div", { class: "cards", "aria-busy": "true" }, t("loading"));
  page(t("expertTitle"), h("div", { class: "toolbar" },
    h("label", { for: "expert-date" }, t("date")), date, todayBtn), waitingBox, msg, list);
  let last = "";
  function changed() { state.expertDate = date.value; last = ""; load(); }
  date.addEventListener("change", changed);

  async function load() {
    const r = await api("GET", `/api/expert/appointments?date=${encodeURIComponent(date.value || today)}`);
    if (stale()) return;
    if (!r.ok) { say(msg, problemText(r), "error"); return; }
    const items = r.data.appointments || [];
    for (const code of [...state.issued.keys()]) {
      const a = items.find((x) => x.bookingCode === code);
      if (a && !["lobby", "code_issued"].includes(a.phase)) state.issued.delete(code);
    }
    const json = JSON.stringify(items) + JSON.stringify([...state.issued.keys()]) + state.lang;
    if (json === last) return;
    last = json;
    const waiting = r.data.waitingInLobby || [];
    say(waitingBox, waiting.length ? t("waitingCount", { n: waiting.length }) : "", "warn");
    const focusKey = document.activeElement?.dataset?.focusKey;
    list.removeAttribute("aria-busy");
    list.replaceChildren(...(items.length ? items.map(row) : [h("p", {}, t("noAppointments"))]));
    if (focusKey) list.querySelector(`[data-focus-key="${focusKey}"]`)?.focus();
  }
  function row(a) {
    const live = ["join_open", "lobby", "code_issued", "verified"].includes(a.phase);
    const issued = state.issued.get(a.bookingCode);
    return h("article", { class: `card${a.waitingInLobby ? " waiting" : ""}`, "data-booking": a.bookingCode },
      h("h2", {}, `${fmtTime(a.start)}–${fmtTime(a.end)} · ${a.bookingCode}`),
      a.waitingInLobby ? h("p", { class: "badge-waiting", "data-testid": "waiting" }, t("waiting")) : null,
      summary(a),
      a.customerPhone ? h("p", {}, `${t("customerPhone")}: `, h("a", { href: `tel:${a.customerPhone}` }, a.customerPhone)) : null,
      issued ? codePanel(a.bookingCode, issued) : null,
      h("div", { class: "actions" },
        a.channel === "online" ? h("button", { type: "button", class: "primary", "data-focus-key": `issue-${a.bookingCode}`,
          disabled: !["lobby", "code_issued"].includes(a.phase), onclick: () => issue(a) }, t("issueCode")) : null,
        a.joinUrl && live ? h("a", { class: "button", href: a.joinUrl, target: "_blank", rel: "noopener" }, t("openTeams")) : null,
        h("button", { type: "button", class: "danger", "data-focus-key": `end-${a.bookingCode}`, disabled: !live,
          onclick: () => end(a) }, t("endMeeting"))));
  }
  function codePanel(code, issued) {
    return h("section", { class: "issued", "aria-labelledby": `code-title-${code}` },
      h("h3", { id: `code-title-${code}` }, t("codeFor", { code })),
      h("p", { class: "big-code", "data-testid": "issued-code", "aria-live": "polite" }, issued.code.replace(/(\d{3})(?=\d)/g, "$1 ")),
      h("p", {}, t("codeValid", { time: fmtTime(issued.expiresAt), n: issued.attemptsAllowed })),
      h("p", { class: "hint" }, t("codeOnce")),
      h("button", { type: "button", "data-focus-key": `hide-${code}`,
        onclick: () => { state.issued.delete(code); last = ""; load(); } }, t("hide")));
  }
  async function issue(a) {
    const r = await api("POST", `/api/expert/appointments/${encodeURIComponent(a.bookingCode)}/identification-code`);
    if (stale()) return;
    if (!r.ok) { say(msg, problemText(r), "error"); return; }
    state.issued.set(a.bookingCode, { code: r.data.code, expiresAt: r.data.expiresAt, attemptsAllowed: r.data.attemptsAllowed });
    say(msg, "");
    last = "";
    await load();
  }
  async function end(a) {
    const ok = await confirmDialog(t("endConfirm", { code: a.bookingCode }), t("endYes"), t("endNo"));
    if (!ok) return;
    const r = await api("POST", `/api/expert/appointments/${encodeURIComponent(a.bookingCode)}/end`);
    if (stale()) return;
    say(msg, r.ok ? t("ended", { code: a.bookingCode }) : problemText(r), r.ok ? "ok" : "error");
    state.issued.delete(a.bookingCode);
    last = "";
    await load();
  }
  await load();
  poll(load, POLL_EXPERT_MS);
}

// ---------------------------------------------------------------------------- start
async function start() {
  wireChrome();
  const [experts] = await Promise.all([api("GET", "/api/experts", null, { auth: false }), showClock(), catalogue()]);
  state.experts = experts.ok ? experts.data.experts : [];
  if (state.who.kind === "expert" && !state.experts.some((x) => x.id === state.who.id)) {
    state.who = { kind: "customer", id: "demo-customer" };
  }
  window.addEventListener("hashchange", () => route());
  if (state.clockAvailable) setInterval(showClock, 5000);
  await route();
  document.body.dataset.ready = "true";
}

start();
