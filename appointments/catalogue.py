"""What can be booked: channels, topics (fi/sv/en labels) and languages."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

LANGUAGES = ("fi", "sv", "en")


class Channel(StrEnum):
    ONLINE = "online"  # Teams online meeting (verkkoneuvottelu)
    PHONE = "phone"
    BRANCH = "branch"


CHANNEL_LABELS: dict[Channel, dict[str, str]] = {
    Channel.ONLINE: {"fi": "Verkkoneuvottelu", "sv": "Onlinemöte", "en": "Online meeting"},
    Channel.PHONE: {"fi": "Puhelinneuvottelu", "sv": "Telefonmöte", "en": "Phone meeting"},
    Channel.BRANCH: {"fi": "Konttoritapaaminen", "sv": "Möte på kontoret", "en": "Branch visit"},
}


@dataclass(frozen=True)
class Topic:
    id: str
    group: dict[str, str]
    name: dict[str, str]

    def label(self, lang: str) -> str:
        """The portal's label, e.g. ``Lainat, Asuntolainaneuvottelu``."""
        return f"{self.group[lang]}, {self.name[lang]}"


def _t(topic_id: str, group: tuple[str, str, str], name: tuple[str, str, str]) -> Topic:
    return Topic(topic_id, dict(zip(LANGUAGES, group, strict=True)), dict(zip(LANGUAGES, name, strict=True)))


_LOANS = ("Lainat", "Lån", "Loans")
_SAVINGS = ("Säästäminen ja sijoittaminen", "Sparande och placering", "Savings and investments")
_INSURANCE = ("Vakuutukset", "Försäkringar", "Insurance")
_DAILY = ("Päivittäiset raha-asiat", "Vardagsärenden", "Everyday banking")

TOPICS: dict[str, Topic] = {
    t.id: t
    for t in (
        _t("loans.home-loan", _LOANS, ("Asuntolainaneuvottelu", "Bostadslånemöte", "Home loan consultation")),
        _t("loans.consumer", _LOANS, ("Kulutusluotot", "Konsumtionskrediter", "Consumer credit")),
        _t("loans.payment-plan", _LOANS, ("Lyhennysjoustot", "Amorteringsflexibilitet", "Repayment holiday")),
        _t("savings.funds", _SAVINGS, ("Rahastot", "Fonder", "Funds")),
        _t("savings.pension", _SAVINGS, ("Eläkesäästäminen", "Pensionssparande", "Pension savings")),
        _t(
            "savings.equities",
            _SAVINGS,
            ("Osakkeet ja arvo-osuustili", "Aktier och värdeandelskonto", "Equities and book-entry account"),
        ),
        _t(
            "insurance.home",
            _INSURANCE,
            ("Koti- ja kiinteistövakuutus", "Hem- och fastighetsförsäkring", "Home and property insurance"),
        ),
        _t(
            "insurance.personal",
            _INSURANCE,
            ("Henkilövakuutukset", "Personförsäkringar", "Personal insurance"),
        ),
        _t(
            "daily.accounts",
            _DAILY,
            ("Tilit ja maksaminen", "Konton och betalningar", "Accounts and payments"),
        ),
        _t("daily.cards", _DAILY, ("Kortit", "Kort", "Cards")),
    )
}


def topic_label(topic_id: str, lang: str) -> str:
    return TOPICS[topic_id].label(lang)
