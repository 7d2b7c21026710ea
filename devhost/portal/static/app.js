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
// Every text a customer or an expert reads, in fi, sv and en. Reason codes come from the API's
// capabilityReasons; each has its own explanation here ({phone} is the bank's number).
const TEXTS = {
  fi: {
    skip: "Siirry sisältöön", brand: "Verkkoneuvottelu", langGroup: "Kieli",
    loginWho: "Kirjautunut", loginCustomer: "Asiakastunnus", loginName: "Nimi", loginApply: "Kirjaudu",
    customer: "Asiakas", expertPrefix: "Asiantuntija", navMain: "Päävalikko",
    navUpcoming: "Tulevat neuvottelut", navBook: "Varaa aika", navLookup: "Hae varaus",
    navExpert: "Asiantuntijan näkymä", devClock: "Virtuaaliaika", plusDay: "+1 vrk",
    loading: "Ladataan…", refresh: "Päivitä", back: "Takaisin", ok: "OK",
    upcomingTitle: "Tulevat neuvottelut", noUpcoming: "Sinulla ei ole tulevia neuvotteluja.",
    bookingCode: "Varaustunnus", when: "Aika", duration: "Kesto", topic: "Aihe", expert: "Asiantuntija",
    bank: "Pankki", phase: "Tila", channel: "Tapaamistapa", extraInfo: "Lisätiedot",
    start: "Aloita verkkoneuvottelu", startOpensAt: "Voit aloittaa neuvottelun {time} alkaen.",
    details: "Näytä tiedot", edit: "Muokkaa", cancel: "Peru aika", openMeeting: "Neuvottelusivulle",
    cancelConfirm: "Haluatko varmasti perua ajan {code} ({when})?", cancelYes: "Kyllä, peru", cancelNo: "Älä peru",
    cancelled: "Aika {code} on peruttu.",
    meetingTitle: "Verkkoneuvottelu", step1: "1. Liity verkkoneuvotteluun", step2: "2. Tunnistautuminen",
    join: "Liity neuvotteluun",
    recording: "Huomaathan, että verkkoneuvottelu tallennetaan.",
    joinHelp: "Teams avautuu uuteen ikkunaan. Odota aulassa, kunnes asiantuntija päästää sinut sisään.",
    joined: "Teams avattiin uuteen ikkunaan. Odota aulassa, kunnes asiantuntija päästää sinut sisään.",
    openTeams: "Avaa Teams", popupBlocked: "Jos Teams ei auennut, avaa se tästä:",
    backToMeeting: "Palaa verkkoneuvotteluun",
    tooEarly: "Neuvottelun voi aloittaa aikaisintaan {n} minuuttia ennen alkua, {time} alkaen.",
    notReady: "Neuvottelua valmistellaan. Yritetään uudelleen hetken kuluttua…",
    meetingOver: "Neuvottelu on päättynyt.",
    identParty: "Osallistun verkkoneuvotteluun, jonka toisena osapuolena on asiantuntija {name}{bank}.",
    identHelp: "Asiantuntija kertoo sinulle neuvottelussa kertakäyttöisen tunnisteen. Kirjoita se tähän ja vahvista.",
    identCode: "Verkkoneuvottelun tunniste", confirm: "Vahvista",
    verified: "Tunnistautuminen onnistui. Voit palata verkkoneuvotteluun.",
    wrongCode: "Tunniste on väärä. Yrityksiä jäljellä: {n}.",
    expiredCode: "Tunniste on vanhentunut. Pyydä asiantuntijalta uusi tunniste.",
    lockedCode: "Liian monta väärää yritystä. Tunniste on lukittu – pyydä asiantuntijalta uusi tunniste.",
    lockedAccount: "Liian monta epäonnistunutta yritystä. Ota yhteyttä pankkiin.",
    waitCode: "Liian monta yritystä. Odota {s} sekuntia ja yritä uudelleen.",
    noCode: "Asiantuntija ei ole vielä antanut tunnistetta.",
    codeFormat: "Kirjoita 6-numeroinen tunniste.",
    bookTitle: "Varaa aika", kind: "Tapaamisen tapa", language: "Neuvottelun kieli",
    anyExpert: "Kuka tahansa asiantuntija", slot: "Vapaa aika", day: "Päivä",
    noSlots: "Ei vapaita aikoja tällä valinnalla.", phone: "Puhelinnumero",
    phoneHelp: "Esimerkiksi 040 123 4567 tai +358 40 123 4567", email: "Sähköposti (vapaaehtoinen)",
    extraHelp: "Vapaaehtoinen", book: "Varaa aika", booked: "Aika varattu. Varaustunnus {code}.",
    chooseSlot: "Valitse vapaa aika.", slotsFallback: "Ajanvarauskalenteri ei vastannut – näytetään ehdotetut ajat.",
    fixErrors: "Tarkista merkityt kentät.",
    confirmationTitle: "Vahvistus ajanvarauksesta",
    confirmationIntro: "Kiitos ajanvarauksestasi. Lähetimme vahvistuksen myös sähköpostiisi, jos annoit osoitteen.",
    howToMeet: "Näin liityt verkkoneuvotteluun",
    howToMeetOnline: "Voit aloittaa verkkoneuvottelun aikaisintaan {n} minuuttia ennen alkamisaikaa eli {time} alkaen. Valitse tulevista neuvotteluistasi Aloita verkkoneuvottelu. Odota Teamsin aulassa, kunnes asiantuntija päästää sinut sisään. Asiantuntija kertoo sinulle tunnisteen, jonka vahvistat neuvottelusivulla.",
    howToMeetPhone: "Asiantuntija soittaa sinulle sovittuna aikana puhelinnumeroon, jonka annoit.",
    howToMeetBranch: "Tervetuloa konttoriin. Ota mukaan voimassa oleva henkilöllisyystodistus.",
    manageTitle: "Ajan muuttaminen tai peruminen",
    manageOnline: "Voit muuttaa tai perua ajan verkossa {time} asti.",
    findWithout: "Ilman kirjautumista löydät varauksesi varaustunnuksella {code} ja puhelinnumerolla, jonka annoit.",
    downloadIcs: "Lataa kalenteriin (.ics)",
    lookupTitle: "Hae varaus", lookupHelp: "Hae varauksesi varaustunnuksella ja puhelinnumerolla ilman kirjautumista.",
    lookup: "Hae", notFound: "Varausta ei löytynyt näillä tiedoilla.",
    tooManyLookups: "Liian monta hakua. Odota {s} sekuntia.",
    manageUntil: "Voit muuttaa tai perua varauksen ilman kirjautumista {time} asti.",
    appointmentTitle: "Ajanvaraus",
    changeTime: "Muuta aikaa", newTime: "Valitse uusi aika", saveTime: "Vahvista uusi aika",
    keepTime: "Pidä nykyinen aika", rescheduled: "Aika muutettu. Uusi aika: {when}.",
    notChanged: "Aikaa ei voitu muuttaa: {msg}", notCancelled: "Aikaa ei voitu perua: {msg}",
    tokenExpired: "Varauksen muokkausaika on päättynyt. Hae varaus uudelleen varaustunnuksella ja puhelinnumerolla.",
    joinWindowInfo: "Verkkoneuvotteluun voi liittyä kirjautuneena {n} minuuttia ennen alkua, {time} alkaen.",
    callUs: "Soita meille numeroon {phone}.", callBank: "Ota yhteyttä pankkiisi puhelimitse.",
    reasons: {
      notice_period: "Aikaa voi muuttaa tai perua verkossa viimeistään {hours} tuntia ennen alkua.",
      terminal_phase: "Tämä tapaaminen on jo päättynyt tai peruttu.",
      in_meeting: "Neuvottelu on käynnissä, joten aikaa ei voi enää muuttaa.",
      join_window_not_open: "Voit aloittaa neuvottelun {time} alkaen.",
      not_online: "Tämä tapaaminen ei ole verkkoneuvottelu.",
      join_window_closed: "Neuvottelun aika on päättynyt.",
      not_in_lobby: "Tunnistuskoodin voi antaa, kun asiakas odottaa aulassa.",
      no_code: "Asiantuntija ei ole vielä antanut tunnistetta.",
      not_in_meeting: "Neuvottelu ei ole vielä alkanut.",
      other: "Tätä ei voi nyt tehdä verkossa.",
    },
    expertTitle: "Päivän neuvottelut", date: "Päivä", today: "Tänään", prevDay: "Edellinen päivä",
    nextDay: "Seuraava päivä", noAppointments: "Ei neuvotteluja tänä päivänä.",
    waiting: "Asiakas odottaa aulassa", waitingCount: "Aulassa odottaa: {n}", waitedFor: "Odottanut {time}",
    customerName: "Asiakas", issueCode: "Anna tunnistuskoodi", endMeeting: "Lopeta neuvottelu",
    endConfirm: "Lopetetaanko neuvottelu {code}?", endYes: "Lopeta", endNo: "Älä lopeta",
    ended: "Neuvottelu {code} lopetettu.", customerPhone: "Asiakkaan puhelin",
    codeFor: "Tunnistuskoodi neuvotteluun {code}", codeValid: "Voimassa {time} asti, {n} yritystä.",
    codeOnce: "Koodi näytetään vain kerran. Lue se asiakkaalle.", hide: "Piilota",
    codeLocked: "Asiakas syötti väärän koodin liian monta kertaa, ja koodi lukittiin. Anna uusi koodi.",
    codeExpired: "Koodi vanheni. Anna tarvittaessa uusi koodi.",
    expertOnly: "Valitse yläpalkista asiantuntija.", customerOnly: "Valitse yläpalkista asiakas.",
    signIn: "Kirjaudu sisään jatkaaksesi.", network: "Yhteysvirhe. Yritä uudelleen.",
    units: { hour: ["tunti", "tuntia"], minute: ["minuutti", "minuuttia"], second: ["sekunti", "sekuntia"] },
    phases: { booked: "Varattu", join_open: "Avoinna", lobby: "Aulassa", code_issued: "Koodi annettu",
      verified: "Tunnistettu", ended: "Päättynyt", cancelled: "Peruttu", no_show: "Ei saapunut" },
  },
  sv: {
    skip: "Hoppa till innehållet", brand: "Onlinemöte", langGroup: "Språk",
    loginWho: "Inloggad", loginCustomer: "Kund-id", loginName: "Namn", loginApply: "Logga in",
    customer: "Kund", expertPrefix: "Expert", navMain: "Huvudmeny",
    navUpcoming: "Kommande möten", navBook: "Boka tid", navLookup: "Sök bokning",
    navExpert: "Expertvy", devClock: "Virtuell tid", plusDay: "+1 dygn",
    loading: "Laddar…", refresh: "Uppdatera", back: "Tillbaka", ok: "OK",
    upcomingTitle: "Kommande möten", noUpcoming: "Du har inga kommande möten.",
    bookingCode: "Bokningskod", when: "Tid", duration: "Längd", topic: "Ämne", expert: "Expert",
    bank: "Bank", phase: "Status", channel: "Mötesform", extraInfo: "Tilläggsinformation",
    start: "Starta onlinemötet", startOpensAt: "Du kan starta mötet från {time}.",
    details: "Visa detaljer", edit: "Redigera", cancel: "Avboka", openMeeting: "Till mötessidan",
    cancelConfirm: "Vill du verkligen avboka tiden {code} ({when})?", cancelYes: "Ja, avboka", cancelNo: "Avboka inte",
    cancelled: "Tiden {code} har avbokats.",
    meetingTitle: "Onlinemöte", step1: "1. Anslut till onlinemötet", step2: "2. Identifiering",
    join: "Anslut till mötet",
    recording: "Observera att onlinemötet spelas in.",
    joinHelp: "Teams öppnas i ett nytt fönster. Vänta i lobbyn tills experten släpper in dig.",
    joined: "Teams öppnades i ett nytt fönster. Vänta i lobbyn tills experten släpper in dig.",
    openTeams: "Öppna Teams", popupBlocked: "Om Teams inte öppnades, öppna det här:",
    backToMeeting: "Tillbaka till onlinemötet",
    tooEarly: "Mötet kan startas tidigast {n} minuter före början, från {time}.",
    notReady: "Mötet förbereds. Vi försöker igen om en stund…",
    meetingOver: "Mötet har avslutats.",
    identParty: "Jag deltar i ett onlinemöte där den andra parten är experten {name}{bank}.",
    identHelp: "Experten läser upp en engångskod under mötet. Skriv in den här och bekräfta.",
    identCode: "Onlinemötets kod", confirm: "Bekräfta",
    verified: "Identifieringen lyckades. Du kan återgå till onlinemötet.",
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
    phoneHelp: "Till exempel 040 123 4567 eller +358 40 123 4567", email: "E-post (frivilligt)",
    extraHelp: "Frivilligt", book: "Boka tid", booked: "Tiden är bokad. Bokningskod {code}.",
    chooseSlot: "Välj en ledig tid.", slotsFallback: "Tidsbokningen svarade inte – föreslagna tider visas.",
    fixErrors: "Kontrollera de markerade fälten.",
    confirmationTitle: "Bekräftelse på tidsbokningen",
    confirmationIntro: "Tack för din bokning. Vi skickade också en bekräftelse till din e-post om du angav en adress.",
    howToMeet: "Så här ansluter du till onlinemötet",
    howToMeetOnline: "Du kan starta onlinemötet tidigast {n} minuter före början, alltså från {time}. Välj Starta onlinemötet bland dina kommande möten. Vänta i Teams lobby tills experten släpper in dig. Experten läser upp en kod som du bekräftar på mötessidan.",
    howToMeetPhone: "Experten ringer dig vid den avtalade tiden på det telefonnummer du angav.",
    howToMeetBranch: "Välkommen till kontoret. Ta med ett giltigt identitetsbevis.",
    manageTitle: "Ändra eller avboka tiden",
    manageOnline: "Du kan ändra eller avboka tiden på nätet till {time}.",
    findWithout: "Utan att logga in hittar du bokningen med bokningskoden {code} och det telefonnummer du angav.",
    downloadIcs: "Lägg till i kalendern (.ics)",
    lookupTitle: "Sök bokning", lookupHelp: "Sök din bokning med bokningskod och telefonnummer utan att logga in.",
    lookup: "Sök", notFound: "Ingen bokning hittades med dessa uppgifter.",
    tooManyLookups: "För många sökningar. Vänta {s} sekunder.",
    manageUntil: "Du kan ändra eller avboka bokningen utan att logga in till {time}.",
    appointmentTitle: "Tidsbokning",
    changeTime: "Ändra tid", newTime: "Välj en ny tid", saveTime: "Bekräfta den nya tiden",
    keepTime: "Behåll nuvarande tid", rescheduled: "Tiden har ändrats. Ny tid: {when}.",
    notChanged: "Tiden kunde inte ändras: {msg}", notCancelled: "Tiden kunde inte avbokas: {msg}",
    tokenExpired: "Tiden för att ändra bokningen har gått ut. Sök bokningen igen med bokningskod och telefonnummer.",
    joinWindowInfo: "Du kan ansluta till onlinemötet inloggad {n} minuter före början, från {time}.",
    callUs: "Ring oss på numret {phone}.", callBank: "Kontakta din bank per telefon.",
    reasons: {
      notice_period: "Tiden kan ändras eller avbokas på nätet senast {hours} timmar före början.",
      terminal_phase: "Det här mötet har redan avslutats eller avbokats.",
      in_meeting: "Mötet pågår, så tiden kan inte längre ändras.",
      join_window_not_open: "Du kan starta mötet från {time}.",
      not_online: "Det här mötet är inte ett onlinemöte.",
      join_window_closed: "Mötestiden är över.",
      not_in_lobby: "En identifieringskod kan ges när kunden väntar i lobbyn.",
      no_code: "Experten har inte gett någon kod ännu.",
      not_in_meeting: "Mötet har inte börjat ännu.",
      other: "Det här går inte att göra på nätet just nu.",
    },
    expertTitle: "Dagens möten", date: "Dag", today: "I dag", prevDay: "Föregående dag",
    nextDay: "Nästa dag", noAppointments: "Inga möten denna dag.",
    waiting: "Kunden väntar i lobbyn", waitingCount: "I lobbyn väntar: {n}", waitedFor: "Har väntat {time}",
    customerName: "Kund", issueCode: "Ge identifieringskod", endMeeting: "Avsluta mötet",
    endConfirm: "Avsluta mötet {code}?", endYes: "Avsluta", endNo: "Avsluta inte",
    ended: "Mötet {code} avslutat.", customerPhone: "Kundens telefon",
    codeFor: "Identifieringskod för mötet {code}", codeValid: "Giltig till {time}, {n} försök.",
    codeOnce: "Koden visas bara en gång. Läs upp den för kunden.", hide: "Dölj",
    codeLocked: "Kunden angav fel kod för många gånger och koden låstes. Ge en ny kod.",
    codeExpired: "Koden gick ut. Ge vid behov en ny kod.",
    expertOnly: "Välj en expert i fältet överst.", customerOnly: "Välj kund i fältet överst.",
    signIn: "Logga in för att fortsätta.", network: "Nätverksfel. Försök igen.",
    units: { hour: ["timme", "timmar"], minute: ["minut", "minuter"], second: ["sekund", "sekunder"] },
    phases: { booked: "Bokad", join_open: "Öppen", lobby: "I lobbyn", code_issued: "Kod given",
      verified: "Identifierad", ended: "Avslutad", cancelled: "Avbokad", no_show: "Kom inte" },
  },
  en: {
    skip: "Skip to content", brand: "Online meeting", langGroup: "Language",
    loginWho: "Signed in as", loginCustomer: "Customer id", loginName: "Name", loginApply: "Sign in",
    customer: "Customer", expertPrefix: "Expert", navMain: "Main menu",
    navUpcoming: "Upcoming meetings", navBook: "Book a meeting", navLookup: "Find a booking",
    navExpert: "Expert console", devClock: "Virtual time", plusDay: "+1 day",
    loading: "Loading…", refresh: "Refresh", back: "Back", ok: "OK",
    upcomingTitle: "Upcoming meetings", noUpcoming: "You have no upcoming meetings.",
    bookingCode: "Booking code", when: "Time", duration: "Duration", topic: "Topic", expert: "Expert",
    bank: "Bank", phase: "Status", channel: "Meeting type", extraInfo: "Extra information",
    start: "Start online meeting", startOpensAt: "You can start the meeting from {time}.",
    details: "Show details", edit: "Edit", cancel: "Cancel booking", openMeeting: "Meeting page",
    cancelConfirm: "Do you really want to cancel {code} ({when})?", cancelYes: "Yes, cancel", cancelNo: "Keep it",
    cancelled: "Booking {code} has been cancelled.",
    meetingTitle: "Online meeting", step1: "1. Join the online meeting", step2: "2. Identification",
    join: "Join meeting",
    recording: "Please note that the online meeting is recorded.",
    joinHelp: "Teams opens in a new window. Wait in the lobby until the expert admits you.",
    joined: "Teams opened in a new window. Wait in the lobby until the expert admits you.",
    openTeams: "Open Teams", popupBlocked: "If Teams did not open, open it here:",
    backToMeeting: "Back to the online meeting",
    tooEarly: "The meeting can be started at the earliest {n} minutes before it begins, from {time}.",
    notReady: "The meeting is being prepared. Trying again in a moment…",
    meetingOver: "The meeting has ended.",
    identParty: "I am taking part in an online meeting with the expert {name}{bank}.",
    identHelp: "In the meeting the expert reads out a one-time code. Type it here and confirm.",
    identCode: "Online meeting code", confirm: "Confirm",
    verified: "You have been identified. You can return to the online meeting.",
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
    phoneHelp: "For example 040 123 4567 or +358 40 123 4567", email: "E-mail (optional)",
    extraHelp: "Optional", book: "Book", booked: "Booked. Your booking code is {code}.",
    chooseSlot: "Choose a free time.", slotsFallback: "The booking calendar did not answer – showing suggested times.",
    fixErrors: "Please check the marked fields.",
    confirmationTitle: "Booking confirmation",
    confirmationIntro: "Thank you for your booking. If you gave an e-mail address, the confirmation is on its way there too.",
    howToMeet: "How to join the online meeting",
    howToMeetOnline: "You can start the online meeting no earlier than {n} minutes before it begins, from {time}. Choose Start online meeting in your upcoming meetings. Wait in the Teams lobby until the expert admits you. The expert reads out a code that you confirm on the meeting page.",
    howToMeetPhone: "The expert calls you at the agreed time on the phone number you gave.",
    howToMeetBranch: "Welcome to the branch. Please bring a valid proof of identity.",
    manageTitle: "Changing or cancelling",
    manageOnline: "You can change or cancel online until {time}.",
    findWithout: "Without signing in, find your booking with the booking code {code} and the phone number you gave.",
    downloadIcs: "Add to calendar (.ics)",
    lookupTitle: "Find a booking", lookupHelp: "Find your booking with its code and your phone number, without signing in.",
    lookup: "Find", notFound: "No booking matches these details.",
    tooManyLookups: "Too many searches. Wait {s} seconds.",
    manageUntil: "You can change or cancel this booking without signing in until {time}.",
    appointmentTitle: "Booking",
    changeTime: "Change time", newTime: "Choose a new time", saveTime: "Confirm new time",
    keepTime: "Keep current time", rescheduled: "The time has been changed. New time: {when}.",
    notChanged: "The time could not be changed: {msg}", notCancelled: "The booking could not be cancelled: {msg}",
    tokenExpired: "Your time to change this booking has run out. Please look the booking up again with its code and your phone number.",
    joinWindowInfo: "Signed in, you can join the online meeting {n} minutes before it begins, from {time}.",
    callUs: "Please call us on {phone}.", callBank: "Please call your bank.",
    reasons: {
      notice_period: "Bookings can be changed or cancelled online until {hours} hours before the start.",
      terminal_phase: "This appointment has already ended or been cancelled.",
      in_meeting: "The meeting is in progress, so the time can no longer be changed.",
      join_window_not_open: "You can start the meeting from {time}.",
      not_online: "This appointment is not an online meeting.",
      join_window_closed: "The meeting's time is over.",
      not_in_lobby: "A code can be issued while the customer waits in the lobby.",
      no_code: "The expert has not given a code yet.",
      not_in_meeting: "The meeting has not started yet.",
      other: "This cannot be done online right now.",
    },
    expertTitle: "Appointments of the day", date: "Date", today: "Today", prevDay: "Previous day",
    nextDay: "Next day", noAppointments: "No appointments on this day.",
    waiting: "Customer waiting in the lobby", waitingCount: "Waiting in the lobby: {n}", waitedFor: "Waited {time}",
    customerName: "Customer", issueCode: "Issue code", endMeeting: "End meeting",
    endConfirm: "End meeting {code}?", endYes: "End", endNo: "Don't end",
    ended: "Meeting {code} ended.", customerPhone: "Customer's phone",
    codeFor: "Identification code for {code}", codeValid: "Valid until {time}, {n} attempts.",
    codeOnce: "The code is shown only once. Read it out to the customer.", hide: "Hide",
    codeLocked: "The customer typed a wrong code too many times and the code was locked. Issue a new code.",
    codeExpired: "The code expired. Issue a new one if needed.",
    expertOnly: "Choose an expert in the bar at the top.", customerOnly: "Choose a customer in the bar at the top.",
    signIn: "Sign in to continue.", network: "Network error. Please try again.",
    units: { hour: ["hour", "hours"], minute: ["minute", "minutes"], second: ["second", "seconds"] },
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
  clockOffset: 0, // server (virtual) time minus this browser's time, ms
  issued: new Map(), // booking code -> {code, expiresAt, attemptsAllowed}; memory only
  codeNotices: new Map(), // booking code -> text key of what became of the last code
  joinUrls: new Map(), // booking code -> the Teams link the join answered; memory only
  flash: null, // {text, kind}
  lookup: null, // {booking, token, expiresAt} from the last lookup; memory only
  pollTimer: null,
  tickTimer: null,
  routeToken: 0,
};

function pick(value, allowed, fallback) { return allowed.includes(value) ? value : fallback; }

function t(key, vars = {}) {
  const text = TEXTS[state.lang][key] ?? TEXTS.fi[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
}
const phaseLabel = (p) => TEXTS[state.lang].phases[p] || p;
const localized = (obj) => (obj && typeof obj === "object" ? obj[state.lang] || obj.fi : obj) || "";

// ---------------------------------------------------------------------------- capabilities
// What may be done with an appointment comes only from the API (capabilities and, for the false
// ones, capabilityReasons); the portal keeps no rules of its own about phases.
const can = (a, what) => a?.capabilities?.[what] === true;
const why = (a, what) => a?.capabilityReasons?.[what] || "other";

function callText() {
  const phone = state.catalogue?.servicePhone;
  return phone ? t("callUs", { phone }) : t("callBank");
}
/** The localised explanation of why ``what`` is not possible, with whom to call where it helps. */
function reasonText(a, what) {
  const code = why(a, what);
  const texts = TEXTS[state.lang].reasons;
  const text = (texts[code] ?? texts.other).replace(/\{(\w+)\}/g, (_, k) => String({
    hours: state.catalogue?.changeNoticeHours ?? 24,
    time: a.joinWindowOpensAt ? fmtDateTime(a.joinWindowOpensAt) : "",
  }[k] ?? ""));
  return ["notice_period", "other"].includes(code) ? `${text} ${callText()}` : text;
}

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

/** A message box; "error" is for failures only, "ok" for successes only. */
function say(el, text, kind = "info") {
  el.textContent = text || "";
  el.dataset.kind = kind;
  el.hidden = !text;
}
const statusBox = (attrs = {}) => h("p", { class: "msg", role: "status", "aria-live": "polite", hidden: true, ...attrs });

// ---------------------------------------------------------------------------- time
const WEEKDAYS = {
  fi: ["sunnuntai", "maanantai", "tiistai", "keskiviikko", "torstai", "perjantai", "lauantai"],
  sv: ["söndag", "måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag"],
  en: ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"],
};
const EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
  "October", "November", "December"];
const AT = { fi: "klo", sv: "kl.", en: "at" };
const partsFmt = new Intl.DateTimeFormat("en-GB", { timeZone: ZONE, hourCycle: "h23", year: "numeric",
  month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", weekday: "short" });
const WD = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

/** Helsinki wall-clock parts of an instant. */
function wall(date) {
  const p = Object.fromEntries(partsFmt.formatToParts(date).map((x) => [x.type, x.value]));
  return { y: +p.year, m: +p.month, d: +p.day, hh: +p.hour, mm: +p.minute, wd: WD[p.weekday] };
}
const pad = (n) => String(n).padStart(2, "0");
/** "9.05" (fi, sv) or "09:05" (en): a bare clock time, for ranges and lists of times. */
function fmtTime(iso) {
  const w = wall(new Date(iso));
  return state.lang === "en" ? `${pad(w.hh)}:${pad(w.mm)}` : `${w.hh}.${pad(w.mm)}`;
}
/** "klo 9.05", "kl. 9.05", "09:05": a time on its own, so that 13.03 never reads as a date. */
function fmtAt(iso) { return state.lang === "en" ? fmtTime(iso) : `${AT[state.lang]} ${fmtTime(iso)}`; }
function fmtDate(w) {
  return state.lang === "en" ? `${WEEKDAYS.en[w.wd]} ${w.d} ${EN_MONTHS[w.m - 1]} ${w.y}`
    : `${WEEKDAYS[state.lang][w.wd]} ${w.d}.${w.m}.${w.y}`;
}
/** e.g. "maanantai 7.2.2022 klo 12.30" (the service's own conventions). */
function fmtDateTime(iso) { return `${fmtDate(wall(new Date(iso)))} ${AT[state.lang]} ${fmtTime(iso)}`; }
/** A span in words: "1 tunti 30 minuuttia", "45 minuter", "2 hours"; seconds only when asked. */
function fmtSpan(totalSeconds, { seconds = false } = {}) {
  const u = TEXTS[state.lang].units;
  const word = (n, unit) => `${n} ${u[unit][n === 1 ? 0 : 1]}`;
  const s = Math.max(0, Math.floor(totalSeconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const parts = [];
  if (hours) parts.push(word(hours, "hour"));
  if (minutes || (!hours && !seconds)) parts.push(word(minutes, "minute"));
  if (seconds && !hours) parts.push(word(s % 60, "second"));
  return parts.join(" ");
}
const fmtDuration = (minutes) => fmtSpan(minutes * 60);
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
function fromIsoDay(s) {
  const [y, m, d] = s.split("-").map(Number);
  return fromWall(y, m, d, 12, 0);
}
const shiftDay = (day, n) => isoDay(wall(new Date(fromIsoDay(day).getTime() + n * 86400000)));

async function serverNow() {
  if (state.clockAvailable) {
    const r = await api("GET", "/dev/clock", null, { auth: false });
    if (r.ok && r.data.now) {
      state.clockOffset = Date.parse(r.data.now) - Date.now();
      return new Date(r.data.now);
    }
  }
  return new Date();
}
/** The server's time now, without a request (the virtual clock's offset as last seen). */
const serverNowSync = () => new Date(Date.now() + state.clockOffset);

// ---------------------------------------------------------------------------- API
function principal() {
  const claims = [{ typ: ID_CLAIM, val: state.who.id }];
  if (state.who.kind === "expert") claims.push({ typ: "roles", val: "Expert" });
  else if (state.who.name) claims.push({ typ: "name", val: state.who.name });
  const json = JSON.stringify({ auth_typ: "aad", claims, name_typ: "name", role_typ: "roles" });
  return btoa(String.fromCharCode(...new TextEncoder().encode(json)));
}

async function api(method, path, body = null, { auth = true, headers = {}, raw = false } = {}) {
  // The server localises problem+json details by Accept-Language: the page's language.
  const init = { method, headers: { Accept: raw ? "*/*" : "application/json", "Accept-Language": state.lang, ...headers },
    cache: "no-store" };
  if (auth) init.headers["X-MS-CLIENT-PRINCIPAL"] = principal();
  if (body !== null) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    const res = await fetch(path, init);
    if (raw && res.ok) return { ok: true, status: res.status, blob: await res.blob(), data: {} };
    const text = await res.text();
    let data = {};
    try { data = text ? JSON.parse(text) : {}; } catch { data = {}; }
    return { ok: res.ok, status: res.status, data, retryAfter: Number(res.headers.get("Retry-After")) || 0 };
  } catch {
    return { ok: false, status: 0, data: {}, retryAfter: 0 };
  }
}
const slug = (data) => String(data.type || "").split("/").pop();
/** What went wrong, in the page's language: the server's detail (localised by Accept-Language,
 * with the bank's number where the customer must call), or our own text when there is none. */
function problemText(r) {
  if (r.status === 0) return t("network");
  if (r.status === 401) return t("signIn");
  return r.data.detail || r.data.title || String(r.status);
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
  $("#login-name-label").textContent = t("loginName");
  $("#login-apply").textContent = t("loginApply");
  const who = $("#login-who");
  who.replaceChildren(
    h("option", { value: "customer" }, t("customer")),
    ...state.experts.map((x) => h("option", { value: `expert:${x.id}` }, `${t("expertPrefix")}: ${x.displayName}`)),
  );
  who.value = state.who.kind === "expert" ? `expert:${state.who.id}` : "customer";
  if (!who.value) who.value = "customer";
  $("#login-customer").value = state.who.kind === "customer" ? state.who.id : "demo-customer";
  $("#login-name").value = state.who.kind === "customer" ? state.who.name || "" : "";
  $("#login-customer-wrap").hidden = who.value !== "customer";
  const nav = $("#nav");
  nav.setAttribute("aria-label", t("navMain"));
  const links = state.who.kind === "expert"
    ? [["#/expert", t("navExpert")]]
    : [["#/", t("navUpcoming")], ["#/book", t("navBook")], ["#/lookup", t("navLookup")]];
  const current = location.hash || "#/";
  nav.replaceChildren(...links.map(([href, label]) =>
    h("a", { href, "aria-current": current === href || current.startsWith(`${href}/`) && href !== "#/"
      ? "page" : null }, label)));
  $("#devclock-label").textContent = t("devClock");
  $("#advance-day").textContent = t("plusDay");
  $("#confirm-yes").textContent = t("ok");
}

function wireChrome() {
  $("#langs").addEventListener("click", (e) => {
    const lang = e.target.closest("button")?.dataset.lang;
    if (!lang) return;
    state.lang = lang;
    localStorage.setItem("portal.lang", lang);
    route({ keepFocus: true });
  });
  $("#login-who").addEventListener("change", (e) => {
    $("#login-customer-wrap").hidden = e.target.value !== "customer";
  });
  $("#login").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = $("#login-who").value;
    state.who = v === "customer"
      ? { kind: "customer", id: $("#login-customer").value.trim() || "demo-customer",
        name: $("#login-name").value.trim() || null }
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
  if (state.clockAvailable) {
    state.clockOffset = Date.parse(r.data.now) - Date.now();
    $("#devclock-now").textContent = fmtDateTime(r.data.now);
  }
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

/** Repeat ``fn`` every ``ms`` while the view that asked is current: a view that finished its
 * first load after the visitor had moved on must not stop the polling of the page now shown. */
function poll(fn, ms, stale) {
  if (stale()) return;
  clearInterval(state.pollTimer);
  state.pollTimer = setInterval(() => { if (!stale()) fn(); }, ms);
}

/** #/, #/book, #/lookup, #/expert, and one appointment: #/appointments/CODE (details, change,
 * cancel), …/meeting, …/cancel (asks at once), …/confirmation (after booking). The links in the
 * notifications use the same routes. */
async function route({ keepFocus = false } = {}) {
  clearInterval(state.pollTimer);
  clearInterval(state.tickTimer);
  const token = ++state.routeToken;
  renderChrome();
  const [path, arg, sub] = (location.hash.replace(/^#\/?/, "") || "").split("/").map((x) => decodeURIComponent(x || ""));
  const stale = () => token !== state.routeToken;
  const appointment = { "": manageView, meeting: meetingView, cancel: manageView, confirmation: confirmationView };
  const views = { "": upcomingView, book: bookView, lookup: lookupView, expert: expertView,
    meeting: meetingView, appointments: appointment[sub || ""] || manageView };
  const view = views[path] || upcomingView;
  await view(arg || "", stale, sub || "");
  if (!stale() && !keepFocus) {
    const heading = $("#main h1");
    if (heading && document.activeElement === document.body) heading.focus({ preventScroll: true });
  }
}

function flash(text, kind = "ok") { state.flash = { text, kind }; }
function flashBox() {
  const box = statusBox({ "data-testid": "flash" });
  if (state.flash) say(box, state.flash.text, state.flash.kind);
  state.flash = null;
  return box;
}

function requireRole(kind) {
  if (state.who.kind === kind) return true;
  page(t(kind === "expert" ? "navExpert" : "navUpcoming"),
    h("p", { class: "msg", role: "status" }, t(kind === "expert" ? "expertOnly" : "customerOnly")));
  return false;
}

function expertLine(a) {
  return a.expert?.displayName || "–";
}
function summary(a, { end = false } = {}) {
  const rows = [
    [t("bookingCode"), h("span", { class: "code", "data-testid": "booking-code" }, a.bookingCode)],
    [t("when"), end ? `${fmtDateTime(a.start)}–${fmtTime(a.end)}` : fmtDateTime(a.start)],
    [t("duration"), fmtDuration(a.durationMinutes)],
    [t("channel"), channelLabel(a)],
    [t("topic"), topicLabel(a)],
    [t("expert"), expertLine(a)],
  ];
  if (a.expert?.bank) rows.push([t("bank"), h("span", { "data-testid": "bank" }, a.expert.bank)]);
  rows.push([t("phase"), h("span", { class: `phase phase-${a.phase}`, "data-testid": "phase" }, phaseLabel(a.phase))]);
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
const appointmentUrl = (code, sub = "") => `#/appointments/${encodeURIComponent(code)}${sub ? `/${sub}` : ""}`;

// ---------------------------------------------------------------------------- customer: upcoming
async function upcomingView(_arg, stale) {
  if (!requireRole("customer")) return;
  const list = h("div", { class: "cards", "aria-busy": "true" }, t("loading"));
  const msg = statusBox();
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
    const code = a.bookingCode;
    const online = a.channel === "online";
    const joinNote = online && !can(a, "canJoin") && why(a, "canJoin") === "join_window_not_open"
      ? h("p", { class: "hint", id: `opens-${code}` }, reasonText(a, "canJoin")) : null;
    const changeNote = !can(a, "canChange") && !can(a, "canCancel")
      ? h("p", { class: "hint", "data-testid": "change-note" }, reasonText(a, "canChange")) : null;
    const actions = h("div", { class: "actions" },
      online ? h("button", {
        type: "button", class: "primary", disabled: !can(a, "canJoin"), "data-focus-key": `start-${code}`,
        "aria-describedby": joinNote ? `opens-${code}` : null,
        onclick: () => { location.hash = appointmentUrl(code, "meeting"); },
      }, t("start")) : null,
      h("a", { class: "button", href: appointmentUrl(code, online ? "meeting" : "") }, t("details")),
      can(a, "canChange") ? h("a", { class: "button", href: appointmentUrl(code) }, t("edit")) : null,
      can(a, "canCancel") ? h("button", { type: "button", class: "danger", "data-focus-key": `cancel-${code}`,
        onclick: () => cancelBooking(a, () => { last = ""; load(); }) }, t("cancel")) : null);
    return h("article", { class: `card${can(a, "canJoin") ? " joinable" : ""}`, "data-booking": code },
      h("h2", {}, fmtDateTime(a.start)), summary(a), joinNote, changeNote, actions);
  }
  await load();
  poll(load, POLL_CUSTOMER_MS * 2, stale);
}

async function cancelBooking(a, after) {
  const ok = await confirmDialog(t("cancelConfirm", { code: a.bookingCode, when: fmtDateTime(a.start) }),
    t("cancelYes"), t("cancelNo"));
  if (!ok) return;
  const r = await api("DELETE", `/api/appointments/${encodeURIComponent(a.bookingCode)}`);
  if (r.ok) flash(t("cancelled", { code: a.bookingCode }));
  else flash(t("notCancelled", { msg: problemText(r) }), "error");
  if (after) after();
  if (location.hash !== "#/") location.hash = "#/"; else route();
}

/** Download the booking's .ics (the API builds it); a blob link, since the request needs a login
 * header or the lookup's token that a plain link cannot carry. */
async function downloadIcs(code, request, msg) {
  const r = await request("GET", `/api/appointments/${encodeURIComponent(code)}/calendar`);
  if (!r.ok) { say(msg, problemText(r), "error"); return; }
  const url = URL.createObjectURL(r.blob);
  const link = h("a", { href: url, download: `${code}.ics`, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
const signedIn = (method, path, body = null) => api(method, path, body, { raw: method === "GET" && path.endsWith("/calendar") });

// ---------------------------------------------------------------------------- one appointment (change, cancel)
/** The signed-in customer's own booking: details, "Muokkaa" (change the time) and cancel. */
async function manageView(code, stale, sub) {
  if (!requireRole("customer")) return;
  const msg = statusBox({ "data-testid": "manage-msg" });
  const result = h("div", { "aria-busy": "true" }, t("loading"));
  page(t("appointmentTitle"), h("p", {}, h("a", { href: "#/" }, `← ${t("back")}`)), flashBox(), msg, result);
  const r = await api("GET", `/api/appointments/${encodeURIComponent(code)}`);
  if (stale()) return;
  result.removeAttribute("aria-busy");
  if (!r.ok) { result.replaceChildren(); say(msg, r.status === 404 ? t("notFound") : problemText(r), "error"); return; }
  const card = manageCard(result, msg, { booking: r.data, request: signedIn, stale, meetingLink: true });
  if (sub === "cancel") {
    if (can(r.data, "canCancel")) card.cancel();
    else say(msg, reasonText(r.data, "canCancel"), "info");
  }
}

/** A booking's card with what may be done to it: used by the signed-in page and by the lookup
 * (``request`` then carries the lookup's manage token). Returns {cancel} for the cancel link. */
function manageCard(result, msg, { booking, request, stale, expiresAt = null, onUnauthorized = null,
  meetingLink = false }) {
  let a = booking;
  const url = () => `/api/appointments/${encodeURIComponent(a.bookingCode)}`;
  const gone = () => stale() || !result.isConnected;
  let cancelBtn = null;

  function unauthorized(r) {
    if (r.status !== 401 || !onUnauthorized) return false;
    onUnauthorized();
    return true;
  }
  async function refresh() {
    const r = await request("GET", url());
    if (gone()) return;
    if (unauthorized(r)) return;
    if (r.ok) { a = r.data; show(); }
  }
  function manageUntil() {
    // The lookup's token runs out, and so does the notice period: whichever comes first.
    const notice = Date.parse(a.start) - (state.catalogue?.changeNoticeHours ?? 24) * 3600000;
    if (!expiresAt) return null;
    const token = Date.parse(expiresAt);
    return token <= notice ? fmtAt(expiresAt) : fmtDateTime(new Date(notice).toISOString());
  }

  function show() {
    const code = a.bookingCode;
    const changeBtn = can(a, "canChange") ? h("button", { type: "button", "aria-expanded": "false",
      "aria-controls": "reschedule", onclick: openReschedule }, t("changeTime")) : null;
    cancelBtn = can(a, "canCancel") ? h("button", { type: "button", class: "danger", onclick: cancel }, t("cancel")) : null;
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
    const joinInfo = a.channel === "online" && can(a, "canJoin") === false && why(a, "canJoin") === "join_window_not_open"
      ? t("joinWindowInfo", { n: a.joinWindowMinutes ?? 15, time: fmtDateTime(a.joinWindowOpensAt) }) : null;
    const until = can(a, "canChange") ? manageUntil() : null;
    const card = h("section", { class: "card", "aria-labelledby": "lookup-when", "data-booking": code },
      h("h2", { id: "lookup-when", tabindex: "-1", "data-testid": "lookup-when" }, fmtDateTime(a.start)),
      summary(a),
      joinInfo ? h("p", { class: "hint" }, joinInfo) : null,
      until ? h("p", { class: "hint" }, t("manageUntil", { time: until })) : null,
      !can(a, "canChange") && !can(a, "canCancel")
        ? h("p", { class: "hint", "data-testid": "change-note" }, reasonText(a, "canChange")) : null,
      h("div", { class: "actions" }, changeBtn, cancelBtn,
        meetingLink && a.channel === "online" ? h("a", { class: "button", href: appointmentUrl(code, "meeting") }, t("openMeeting")) : null,
        h("button", { type: "button", onclick: () => downloadIcs(code, request, msg) }, t("downloadIcs"))),
      changeBtn ? panel : null);
    result.replaceChildren(card);

    let days = [];
    async function loadSlots() {
      say(slotNote, t("loading"));
      slotList.replaceChildren();
      const now = await serverNow();
      // Only what the rules allow: a new time far enough ahead that it could still be changed
      // online (the notice period), never the time the booking already has.
      const earliest = now.getTime() + (state.catalogue?.changeNoticeHours ?? 24) * 3600000;
      const q = new URLSearchParams({ topic: a.topic?.id || "", channel: a.channel, expert: a.expert?.id || "any",
        language: a.language, duration: String(a.durationMinutes), from: isoDay(wall(new Date(earliest))),
        to: isoDay(wall(new Date(earliest + 14 * 86400000))) });
      const r = await api("GET", `/api/slots?${q}`, null, { auth: false });
      if (gone()) return;
      days = r.ok ? normalizeSlots(r.data)
        .map((d) => ({ ...d, slots: d.slots.filter((s) => Date.parse(s.start) >= earliest
          && Date.parse(s.start) !== Date.parse(a.start)) }))
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
      if (gone()) return;
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
        say(msg, t("chooseSlot"), "error");
        (slotList.querySelector("input") || day).focus();
        return;
      }
      save.disabled = true;
      const r = await request("PATCH", url(), { start: slot.value });
      save.disabled = false;
      if (gone()) return;
      if (r.ok) {
        a = r.data;
        show();
        say(msg, t("rescheduled", { when: fmtDateTime(r.data.start) }), "ok");
        $("#lookup-when", result)?.focus();
        return;
      }
      if (unauthorized(r)) return;
      say(msg, t("notChanged", { msg: problemText(r) }), "error");
      if (r.status === 409 && r.data.reason === "slot_taken") await loadSlots(); // offer what is free now
      else await refresh();
    }
  }
  async function cancel() {
    const ok = await confirmDialog(t("cancelConfirm", { code: a.bookingCode, when: fmtDateTime(a.start) }),
      t("cancelYes"), t("cancelNo"));
    if (!ok || gone()) return;
    if (cancelBtn) cancelBtn.disabled = true;
    const r = await request("DELETE", url());
    if (cancelBtn) cancelBtn.disabled = false;
    if (gone()) return;
    if (r.ok) {
      a = r.data;
      show();
      say(msg, t("cancelled", { code: a.bookingCode }), "ok");
      $("#lookup-when", result)?.focus();
      return;
    }
    if (unauthorized(r)) return;
    say(msg, t("notCancelled", { msg: problemText(r) }), "error");
    await refresh();
  }
  show();
  return { cancel };
}

// ---------------------------------------------------------------------------- customer: meeting page
/** The guide's meeting page: 1. join the Teams meeting (recorded), 2. confirm the expert's code. */
async function meetingView(code, stale) {
  if (!requireRole("customer")) return;
  const url = `/api/appointments/${encodeURIComponent(code)}`;
  const facts = h("div", { "aria-busy": "true" }, t("loading"));
  const errorBox = h("p", { class: "msg", role: "alert", hidden: true });
  const steps = h("div", { hidden: true });
  const cancelBtn = h("button", { type: "button", class: "danger", hidden: true }, t("cancel"));
  page(t("meetingTitle"), h("p", {}, h("a", { href: "#/" }, `← ${t("back")}`)), errorBox, facts, steps,
    h("div", { class: "actions" }, cancelBtn));

  const joinMsg = statusBox({ "data-testid": "join-msg" });
  const teamsLink = h("p", { hidden: true, "data-testid": "teams-link" });
  const joinBtn = h("button", { type: "button", class: "primary big", onclick: join }, t("join"));
  const joinSection = h("section", { class: "panel", "aria-labelledby": "join-title" },
    h("h2", { id: "join-title" }, t("step1")),
    h("p", { class: "notice", "data-testid": "recording" }, t("recording")),
    h("p", { class: "hint" }, t("joinHelp")), joinBtn, joinMsg, teamsLink);
  const party = h("p", { class: "party", "data-testid": "ident-party" });
  const codeInput = h("input", { id: "ident-code", name: "code", inputmode: "numeric", autocomplete: "one-time-code",
    pattern: "[0-9 ]*", maxlength: "12", required: true, "aria-describedby": "ident-party ident-help ident-msg",
    class: "otp" });
  const identMsg = h("p", { id: "ident-msg", class: "msg", role: "status", "aria-live": "assertive", hidden: true,
    "data-testid": "ident-msg" });
  const confirmBtn = h("button", { type: "submit", class: "primary" }, t("confirm"));
  const identForm = h("form", { class: "ident", onsubmit: verify, novalidate: true },
    h("label", { for: "ident-code" }, t("identCode")), h("div", { class: "row" }, codeInput, confirmBtn));
  const verifiedBox = statusBox({ class: "msg verified", "data-testid": "verified" });
  const backBtn = h("button", { type: "button", class: "primary", hidden: true, onclick: join }, t("backToMeeting"));
  party.id = "ident-party";
  const identSection = h("section", { class: "panel", "aria-labelledby": "ident-title", hidden: true },
    h("h2", { id: "ident-title" }, t("step2")), party, h("p", { id: "ident-help", class: "hint" }, t("identHelp")),
    identForm, identMsg, verifiedBox, backBtn);
  steps.replaceChildren(joinSection, identSection);

  let current = null;
  let joinedHere = false;
  let retryTimer = null;

  function showVerified() {
    identForm.hidden = true;
    say(identMsg, "");
    say(joinMsg, ""); // "wait in the lobby" is over
    say(verifiedBox, t("verified"), "ok");
    backBtn.hidden = false;
  }
  function update(a) {
    facts.removeAttribute("aria-busy");
    facts.replaceChildren(summary(a));
    const online = a.channel === "online";
    // Over for good: ended, cancelled or missed, or past its time (and grace period).
    const over = !can(a, "canJoin") && ["terminal_phase", "join_window_closed"].includes(why(a, "canJoin"));
    steps.hidden = !online;
    party.textContent = t("identParty", { name: a.expert?.displayName || "–",
      bank: a.expert?.bank ? ` (${a.expert.bank})` : "" });
    joinBtn.disabled = over;
    if (over) {
      say(joinMsg, t("meetingOver"), "info");
      teamsLink.hidden = true; // nothing to open any more
      backBtn.hidden = true;
    }
    // Step 2 is open while the customer waits for a code (the expert can issue one) or has one.
    identSection.hidden = over
      || !(can(a, "canVerify") || can(a, "canIssueCode") || joinedHere || a.phase === "verified");
    if (a.phase === "verified" && !over) showVerified();
    cancelBtn.hidden = !can(a, "canCancel");
    cancelBtn.onclick = () => cancelBooking(a);
  }
  async function load() {
    const r = await api("GET", url);
    if (stale()) return;
    if (!r.ok) {
      say(errorBox, r.status === 404 ? t("notFound") : problemText(r), "error");
      facts.replaceChildren();
      facts.removeAttribute("aria-busy");
      return;
    }
    if (JSON.stringify(r.data) === JSON.stringify(current)) return;
    current = r.data;
    update(current);
  }
  async function join() {
    clearTimeout(retryTimer);
    joinBtn.disabled = true;
    const r = await api("POST", `${url}/join`);
    joinBtn.disabled = false;
    if (stale()) return;
    if (r.ok && r.data.joinUrl) {
      state.joinUrls.set(code, r.data.joinUrl);
      // With "noopener" open() returns null either way, so the link is always offered too.
      window.open(r.data.joinUrl, "_blank", "noopener");
      teamsLink.replaceChildren(`${t("popupBlocked")} `,
        h("a", { href: r.data.joinUrl, target: "_blank", rel: "noopener" }, t("openTeams")));
      teamsLink.hidden = false;
      joinedHere = true;
      if (current?.phase !== "verified") {
        say(joinMsg, t("joined"), "ok");
        identSection.hidden = false;
        codeInput.focus();
      }
      await load();
      return;
    }
    const kind = slug(r.data);
    if (r.status === 409 && r.data.joinWindowOpensAt) {
      const time = fmtDateTime(r.data.joinWindowOpensAt);
      const n = r.data.joinWindowMinutes ?? current?.joinWindowMinutes;
      say(joinMsg, n ? t("tooEarly", { n, time }) : t("startOpensAt", { time }), "error");
    } else if (r.status === 409 && kind === "meeting-not-ready") {
      say(joinMsg, t("notReady"), "info");
      retryTimer = setTimeout(() => { if (!stale()) join(); }, (r.retryAfter || 3) * 1000);
    } else if (r.status === 410) {
      say(joinMsg, t("meetingOver"), "error");
      await load();
    } else {
      say(joinMsg, problemText(r), "error");
    }
  }
  async function verify(e) {
    e.preventDefault();
    const value = codeInput.value.replace(/\s+/g, "");
    if (!/^\d{6,}$/.test(value)) { say(identMsg, t("codeFormat"), "error"); codeInput.focus(); return; }
    confirmBtn.disabled = true;
    const r = await api("POST", `${url}/identity-verification`, { code: value });
    confirmBtn.disabled = false;
    if (stale()) return;
    codeInput.value = "";
    if (r.ok && r.data.verified) { showVerified(); backBtn.focus(); await load(); return; }
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
  // The steps appear once the appointment is known, so nothing moves under the visitor's
  // pointer (or a test's click) when the facts arrive.
  await load();
  if (stale()) return;
  poll(load, POLL_CUSTOMER_MS, stale);
}

// ---------------------------------------------------------------------------- customer: confirmation
/** "Vahvistus ajanvarauksesta": everything the confirmation message says, and an .ics. */
async function confirmationView(code, stale) {
  if (!requireRole("customer")) return;
  const msg = statusBox({ "data-testid": "confirmation-msg" });
  const body = h("div", { "aria-busy": "true" }, t("loading"));
  page(t("confirmationTitle"), flashBox(), msg, body);
  const r = await api("GET", `/api/appointments/${encodeURIComponent(code)}`);
  if (stale()) return;
  body.removeAttribute("aria-busy");
  if (!r.ok) { body.replaceChildren(); say(msg, problemText(r), "error"); return; }
  const a = r.data;
  const noticeEnds = new Date(Date.parse(a.start) - (state.catalogue?.changeNoticeHours ?? 24) * 3600000).toISOString();
  const how = a.channel === "online"
    ? t("howToMeetOnline", { n: a.joinWindowMinutes ?? 15, time: fmtAt(a.joinWindowOpensAt) })
    : t(a.channel === "phone" ? "howToMeetPhone" : "howToMeetBranch");
  body.replaceChildren(
    h("p", {}, t("confirmationIntro")),
    h("section", { class: "card", "aria-labelledby": "confirmation-when", "data-booking": a.bookingCode },
      h("h2", { id: "confirmation-when" }, fmtDateTime(a.start)),
      summary(a, { end: true })),
    h("section", { class: "panel", "aria-labelledby": "how-title" },
      h("h2", { id: "how-title" }, a.channel === "online" ? t("howToMeet") : t("channel")),
      h("p", {}, how),
      a.channel === "online" ? h("p", { class: "notice", "data-testid": "recording" }, t("recording")) : null),
    h("section", { class: "panel", "aria-labelledby": "manage-title" },
      h("h2", { id: "manage-title" }, t("manageTitle")),
      h("p", { "data-testid": "manage-online" }, can(a, "canChange")
        ? t("manageOnline", { time: fmtDateTime(noticeEnds) }) : reasonText(a, "canChange")),
      h("p", {}, t("findWithout", { code: a.bookingCode })),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "primary", onclick: () => downloadIcs(a.bookingCode, signedIn, msg) },
          t("downloadIcs")),
        can(a, "canChange") ? h("a", { class: "button", href: appointmentUrl(a.bookingCode) }, t("edit")) : null,
        h("a", { class: "button", href: "#/" }, t("navUpcoming")))));
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
    cat.durations.map((d) => h("option", { value: String(d), selected: d === 45 }, fmtDuration(d))));
  const day = h("select", { id: "slot-day", name: "day" });
  const slotNote = h("p", { class: "hint", role: "status", "aria-live": "polite", hidden: true });
  const slotList = h("div", { class: "slots", role: "radiogroup", "aria-labelledby": "slot-legend" });
  const slots = h("fieldset", { class: "field", "data-field": "start" },
    h("legend", { id: "slot-legend" }, t("slot")),
    h("label", { for: "slot-day" }, t("day")), day, slotNote, slotList,
    h("p", { class: "field-error", id: "start-error", hidden: true }));
  const phone = h("input", { id: "phone", name: "phone", type: "tel", autocomplete: "tel", required: true,
    inputmode: "tel", "aria-describedby": "phone-help phone-error" });
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
      durationMinutes: Number(duration.value), language: language.value, phone: phone.value.trim(),
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
      location.hash = appointmentUrl(r.data.bookingCode, "confirmation");
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
/** Find a booking by code + phone without a login; the lookup's short-lived manage token then
 * lets the visitor change the time or cancel that one booking (X-Booking-Token, no principal). */
async function lookupView(_arg, stale) {
  const code = h("input", { id: "lookup-code", autocomplete: "off", spellcheck: "false", maxlength: "8",
    required: true, class: "code-input" });
  const phone = h("input", { id: "lookup-phone", type: "tel", autocomplete: "tel", required: true,
    "aria-describedby": "lookup-phone-help" });
  const msg = statusBox({ "data-testid": "lookup-msg" });
  // Outlives the card's re-rendering, so screen readers announce every outcome.
  const manageMsg = statusBox({ "data-testid": "manage-msg" });
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
      { bookingCode: code.value.trim().toUpperCase(), phone: phone.value.trim() }, { auth: false });
    submit.disabled = false;
    if (stale()) return;
    if (r.ok) {
      const { manageToken, manageTokenExpiresAt, ...booking } = r.data;
      state.lookup = { booking, token: manageToken || null, expiresAt: manageTokenExpiresAt || null };
      show();
      $("#lookup-when", result)?.focus();
      return;
    }
    say(msg, r.status === 404 ? t("notFound")
      : r.status === 429 ? t("tooManyLookups", { s: r.retryAfter || 60 }) : problemText(r), "error");
  }
  function expired() {
    state.lookup = null;
    result.replaceChildren();
    say(manageMsg, t("tokenExpired"), "error");
    code.focus();
  }
  function show() {
    const { booking, token, expiresAt } = state.lookup;
    const request = async (method, path, body = null) => {
      const r = await api(method, path, body, { auth: false, headers: { "X-Booking-Token": token },
        raw: method === "GET" && path.endsWith("/calendar") });
      if (r.ok && method !== "GET" && state.lookup) state.lookup.booking = r.data;
      return r;
    };
    manageCard(result, manageMsg, { booking, request, stale, expiresAt, onUnauthorized: expired });
  }
}

// ---------------------------------------------------------------------------- expert console
/** The expert's day: #/expert (today, or the day last shown) or #/expert/2026-12-03 (a mail's link). */
async function expertView(arg, stale) {
  if (!requireRole("expert")) return;
  const today = isoDay(wall(await serverNow()));
  if (stale()) return;
  state.expertDate = /^\d{4}-\d{2}-\d{2}$/.test(arg) ? arg : state.expertDate || today;
  // Days step by buttons and read in words: a native date field shows the browser's format
  // (12/09/2026 in an en-US browser), not the expert's language.
  const dayLabel = h("h2", { id: "expert-day", "aria-live": "polite", "data-testid": "expert-day" });
  const move = (n) => {
    state.expertDate = n === 0 ? today : shiftDay(state.expertDate, n);
    history.replaceState(null, "", `#/expert/${state.expertDate}`); // the address names the day shown
    changed();
  };
  const waitingBox = h("p", { class: "msg waiting-count", role: "status", "aria-live": "polite", hidden: true,
    "data-testid": "waiting-count" });
  const msg = statusBox({ "data-testid": "expert-msg" });
  const list = h("div", { class: "cards", "aria-busy": "true" }, t("loading"));
  page(t("expertTitle"), h("div", { class: "toolbar", role: "group", "aria-labelledby": "expert-day" },
    h("button", { type: "button", onclick: () => move(-1) }, `← ${t("prevDay")}`),
    h("button", { type: "button", onclick: () => move(0) }, t("today")),
    h("button", { type: "button", onclick: () => move(1) }, `${t("nextDay")} →`)),
  dayLabel, waitingBox, msg, list);
  let last = "";
  function changed() { last = ""; load(); }

  async function load() {
    dayLabel.textContent = fmtDate(wall(fromIsoDay(state.expertDate)));
    const r = await api("GET", `/api/expert/appointments?date=${encodeURIComponent(state.expertDate)}`);
    if (stale()) return;
    if (!r.ok) { say(msg, problemText(r), "error"); return; }
    const items = r.data.appointments || [];
    for (const [code, issued] of [...state.issued]) {
      const a = items.find((x) => x.bookingCode === code);
      if (!a || a.phase === "code_issued") continue;
      // The code is no longer waiting: used, or locked by wrong attempts (back in the lobby), or expired.
      state.issued.delete(code);
      if (a.phase === "lobby") {
        state.codeNotices.set(code, Date.parse(issued.expiresAt) <= serverNowSync().getTime() ? "codeExpired" : "codeLocked");
      }
    }
    for (const code of [...state.codeNotices.keys()]) {
      const a = items.find((x) => x.bookingCode === code);
      if (!a || a.phase !== "lobby" || state.issued.has(code)) state.codeNotices.delete(code);
    }
    const json = JSON.stringify(items) + JSON.stringify([...state.issued.keys(), ...state.codeNotices]) + state.lang;
    if (json === last) return;
    last = json;
    const waiting = r.data.waitingInLobby || [];
    say(waitingBox, waiting.length ? t("waitingCount", { n: waiting.length }) : "", "warn");
    const focusKey = document.activeElement?.dataset?.focusKey;
    list.removeAttribute("aria-busy");
    list.replaceChildren(...(items.length ? items.map(row) : [h("p", {}, t("noAppointments"))]));
    tick();
    if (focusKey) list.querySelector(`[data-focus-key="${focusKey}"]`)?.focus();
  }
  /** The live "waited 3 minutes 12 seconds" of every customer in the lobby (server time). */
  function tick() {
    for (const el of list.querySelectorAll("[data-waiting-since]")) {
      const seconds = (serverNowSync().getTime() - Date.parse(el.dataset.waitingSince)) / 1000;
      el.textContent = t("waitedFor", { time: fmtSpan(seconds, { seconds: true }) });
    }
  }
  function row(a) {
    const code = a.bookingCode;
    const issued = state.issued.get(code);
    const notice = state.codeNotices.get(code);
    const joinUrl = a.joinUrl && (can(a, "canEnd") || can(a, "canIssueCode"))
      ? `${a.joinUrl}${a.joinUrl.includes("?") ? "&" : "?"}signedInAs=${encodeURIComponent(state.who.id)}` : null;
    return h("article", { class: `card${a.waitingInLobby ? " waiting" : ""}`, "data-booking": code },
      h("h2", {}, `${fmtAt(a.start)}–${fmtTime(a.end)} · ${code}`),
      a.waitingInLobby ? h("p", { class: "badge-waiting", "data-testid": "waiting" }, t("waiting")) : null,
      a.waitingInLobby && a.phaseSince
        ? h("p", { class: "waited", "data-testid": "waited", "data-waiting-since": a.phaseSince }) : null,
      a.customerName ? h("p", { class: "customer-name", "data-testid": "customer-name" },
        `${t("customerName")}: `, h("strong", {}, a.customerName)) : null,
      summary(a),
      a.customerPhone ? h("p", {}, `${t("customerPhone")}: `, h("a", { href: `tel:${a.customerPhone}` }, a.customerPhone)) : null,
      notice ? h("p", { class: "msg", "data-kind": "warn", role: "status", "data-testid": "code-notice" }, t(notice)) : null,
      issued ? codePanel(code, issued) : null,
      h("div", { class: "actions" },
        a.channel === "online" ? h("button", { type: "button", class: "primary", "data-focus-key": `issue-${code}`,
          disabled: !can(a, "canIssueCode"), onclick: () => issue(a) }, t("issueCode")) : null,
        joinUrl ? h("a", { class: "button", href: joinUrl, target: "_blank", rel: "noopener" }, t("openTeams")) : null,
        h("button", { type: "button", class: "danger", "data-focus-key": `end-${code}`, disabled: !can(a, "canEnd"),
          onclick: () => end(a) }, t("endMeeting"))));
  }
  function codePanel(code, issued) {
    return h("section", { class: "issued", "aria-labelledby": `code-title-${code}` },
      h("h3", { id: `code-title-${code}` }, t("codeFor", { code })),
      h("p", { class: "big-code", "data-testid": "issued-code", "aria-live": "polite" }, issued.code.replace(/(\d{3})(?=\d)/g, "$1 ")),
      h("p", { "data-testid": "code-valid" }, t("codeValid", { time: fmtAt(issued.expiresAt), n: issued.attemptsAllowed })),
      h("p", { class: "hint" }, t("codeOnce")),
      h("button", { type: "button", "data-focus-key": `hide-${code}`,
        onclick: () => { state.issued.delete(code); last = ""; load(); } }, t("hide")));
  }
  async function issue(a) {
    const r = await api("POST", `/api/expert/appointments/${encodeURIComponent(a.bookingCode)}/identification-code`);
    if (stale()) return;
    if (!r.ok) { say(msg, problemText(r), "error"); return; }
    state.issued.set(a.bookingCode, { code: r.data.code, expiresAt: r.data.expiresAt, attemptsAllowed: r.data.attemptsAllowed });
    state.codeNotices.delete(a.bookingCode);
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
  if (stale()) return;
  poll(load, POLL_EXPERT_MS, stale);
  state.tickTimer = setInterval(() => { if (!stale()) tick(); }, 1000);
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
