// The operators' page: GET /api/ops/appointments (filters, paging) and /api/ops/appointments/{code}.
// It needs the function key; it shows identifiers, phases and times only (no personal data exists
// in these answers to show). Texts in Finnish, Swedish and English.

const TEXTS = {
  fi: {
    title: "Ylläpito – verkkoneuvottelut", brand: "Ylläpito", heading: "Tapaamiset",
    intro: "Tunnisteet, vaiheet ja ajat – ei henkilötietoja.", key: "Funktioavain", phase: "Vaihe",
    date: "Päivä", attention: "Vaatii huomiota", search: "Hae", more: "Lisää", any: "Kaikki",
    yes: "Kyllä", no: "Ei", code: "Varaustunnus", start: "Alkaa", channel: "Tapa", expert: "Asiantuntija",
    note: "Huomio", loading: "Haetaan…", found: (n) => `${n} tapaamista`, none: "Ei tapaamisia.",
    denied: "Funktioavain puuttuu tai on väärä.", failed: "Haku epäonnistui", history: "Viimeisimmät tapahtumat",
    runtime: "Durable-tila", durablePhase: "Orkestroinnin vaihe", reasons: "Syyt", updated: "Päivitetty",
    ok: "Kunnossa", runbook: "Toimenpiteet kullekin syylle: docs/RUNBOOK.md.", langGroup: "Kieli",
  },
  sv: {
    title: "Drift – onlinemöten", brand: "Drift", heading: "Möten",
    intro: "Identifierare, faser och tider – inga personuppgifter.", key: "Funktionsnyckel", phase: "Fas",
    date: "Dag", attention: "Kräver uppmärksamhet", search: "Sök", more: "Fler", any: "Alla",
    yes: "Ja", no: "Nej", code: "Bokningskod", start: "Börjar", channel: "Form", expert: "Expert",
    note: "Obs", loading: "Hämtar…", found: (n) => `${n} möten`, none: "Inga möten.",
    denied: "Funktionsnyckeln saknas eller är fel.", failed: "Sökningen misslyckades", history: "Senaste händelser",
    runtime: "Durable-status", durablePhase: "Orkestreringens fas", reasons: "Orsaker", updated: "Uppdaterad",
    ok: "I ordning", runbook: "Åtgärder för varje orsak: docs/RUNBOOK.md.", langGroup: "Språk",
  },
  en: {
    title: "Operations – online meetings", brand: "Operations", heading: "Appointments",
    intro: "Identifiers, phases and times – no personal data.", key: "Function key", phase: "Phase",
    date: "Day", attention: "Needs attention", search: "Search", more: "More", any: "All",
    yes: "Yes", no: "No", code: "Booking code", start: "Starts", channel: "Kind", expert: "Expert",
    note: "Attention", loading: "Loading…", found: (n) => `${n} appointments`, none: "No appointments.",
    denied: "The function key is missing or wrong.", failed: "The search failed", history: "Latest events",
    runtime: "Durable status", durablePhase: "Orchestration phase", reasons: "Reasons", updated: "Updated",
    ok: "All well", runbook: "What to do for each reason: docs/RUNBOOK.md.", langGroup: "Language",
  },
};
const PHASES = ["booked", "join_open", "lobby", "code_issued", "verified", "ended", "cancelled", "no_show"];
const PHASE_LABELS = {
  fi: ["varattu", "liittyminen auki", "odotustila", "koodi annettu", "tunnistettu", "päättynyt", "peruttu", "ei saapunut"],
  sv: ["bokad", "anslutning öppen", "väntrum", "kod given", "identifierad", "avslutad", "avbokad", "uteblev"],
  en: ["booked", "join open", "lobby", "code issued", "verified", "ended", "cancelled", "no-show"],
};
const CHANNELS = {
  fi: { online: "verkko", phone: "puhelin", branch: "konttori" },
  sv: { online: "online", phone: "telefon", branch: "kontor" },
  en: { online: "online", phone: "phone", branch: "branch" },
};
const phaseLabel = (p) => PHASE_LABELS[state.lang][PHASES.indexOf(p)] || p;
const LANGS = Object.keys(TEXTS);
const $ = (sel) => document.querySelector(sel);
const state = {
  lang: LANGS.includes(localStorage.getItem("portal.lang")) ? localStorage.getItem("portal.lang") : "fi",
  rows: [],
  continuation: null,
  searched: false,
};
const t = (key, ...args) => {
  const v = TEXTS[state.lang][key];
  return typeof v === "function" ? v(...args) : v;
};

function when(iso) {
  if (!iso) return "–";
  const locale = { fi: "fi-FI", sv: "sv-FI", en: "en-GB" }[state.lang];
  return new Date(iso).toLocaleString(locale, { timeZone: "Europe/Helsinki", dateStyle: "medium", timeStyle: "short" });
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.append(td);
  return td;
}

function renderTexts() {
  document.documentElement.lang = state.lang;
  document.title = t("title");
  $("#langs").setAttribute("aria-label", t("langGroup"));
  for (const b of document.querySelectorAll("#langs button")) {
    b.setAttribute("aria-pressed", String(b.dataset.lang === state.lang));
  }
  const ids = {
    "#brand": "brand", "#title": "heading", "#intro": "intro", "#key-label": "key", "#phase-label": "phase",
    "#date-label": "date", "#attention-label": "attention", "#search": "search", "#more": "more",
    "#list-caption": "heading", "#h-code": "code", "#h-phase": "phase", "#h-start": "start",
    "#h-channel": "channel", "#h-expert": "expert", "#h-attention": "note", "#history-title": "history",
    "#runbook": "runbook",
  };
  for (const [sel, key] of Object.entries(ids)) $(sel).textContent = t(key);
  const phase = $("#phase");
  const chosen = phase.value;
  phase.replaceChildren(new Option(t("any"), ""), ...PHASES.map((p) => new Option(phaseLabel(p), p)));
  phase.value = chosen;
  const attention = $("#attention");
  const flagged = attention.value;
  attention.replaceChildren(new Option(t("any"), ""), new Option(t("yes"), "true"), new Option(t("no"), "false"));
  attention.value = flagged;
}

async function api(path) {
  const key = $("#key").value.trim();
  sessionStorage.setItem("ops.key", key);
  const r = await fetch(path, { headers: { "x-functions-key": key } });
  if (r.status === 401) throw new Error(t("denied"));
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`${t("failed")}: ${body.detail || body.title || r.status}`);
  return body;
}

function renderRows() {
  if (!state.searched) return;
  const tbody = $("#list tbody");
  tbody.replaceChildren();
  for (const a of state.rows) {
    const tr = document.createElement("tr");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = a.bookingCode;
    button.addEventListener("click", () => showDetail(a.bookingCode));
    cell(tr, "").append(button);
    cell(tr, phaseLabel(a.phase));
    cell(tr, when(a.start));
    cell(tr, CHANNELS[state.lang][a.channel] || a.channel);
    cell(tr, a.expertId);
    cell(tr, a.attention || "");
    tbody.append(tr);
  }
  $("#list").hidden = state.rows.length === 0;
  $("#more").hidden = !state.continuation;
  $("#status").textContent = state.rows.length ? t("found", state.rows.length) : t("none");
}

async function search(next = false) {
  const params = new URLSearchParams({ limit: "50" });
  for (const [name, sel] of [["phase", "#phase"], ["date", "#date"], ["attention", "#attention"]]) {
    if ($(sel).value) params.set(name, $(sel).value);
  }
  if (next && state.continuation) params.set("continuation", state.continuation);
  $("#status").textContent = t("loading");
  try {
    const body = await api(`/api/ops/appointments?${params}`);
    state.rows = next ? state.rows.concat(body.appointments) : body.appointments;
    state.continuation = body.continuation;
    state.searched = true;
    renderRows();
  } catch (err) {
    $("#status").textContent = err.message;
  }
}

async function showDetail(code) {
  try {
    const d = await api(`/api/ops/appointments/${encodeURIComponent(code)}`);
    $("#detail-title").textContent = `${d.bookingCode} · ${d.instanceId}`;
    const facts = [
      [t("phase"), phaseLabel(d.phase)], [t("start"), when(d.start)], [t("expert"), d.expertId],
      [t("runtime"), d.durable.runtimeStatus || "–"],
      [t("durablePhase"), d.durable.phase ? phaseLabel(d.durable.phase) : "–"],
      [t("updated"), when(d.durable.lastUpdatedTime)],
      [t("reasons"), d.attentionReasons.length ? d.attentionReasons.join(", ") : t("ok")],
    ];
    $("#detail-facts").replaceChildren(...facts.flatMap(([k, v]) => {
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = v;
      return [dt, dd];
    }));
    $("#history").replaceChildren(...d.durable.history.map((e) => {
      const li = document.createElement("li");
      li.textContent = `${when(e.Timestamp)} ${e.EventType}${e.Name || e.FunctionName ? ` – ${e.Name || e.FunctionName}` : ""}`;
      return li;
    }));
    $("#detail").hidden = false;
    $("#detail-title").focus();
  } catch (err) {
    $("#status").textContent = err.message;
  }
}

$("#key").value = sessionStorage.getItem("ops.key") || "";
$("#filters").addEventListener("submit", (e) => {
  e.preventDefault();
  search(false);
});
$("#more").addEventListener("click", () => search(true));
$("#langs").addEventListener("click", (e) => {
  const lang = e.target.closest("button")?.dataset.lang;
  if (!lang) return;
  state.lang = lang;
  localStorage.setItem("portal.lang", lang);
  renderTexts();
  renderRows();
});
renderTexts();
