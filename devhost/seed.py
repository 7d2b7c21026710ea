"""Demo data: the expert directory the seed names. ``python -m devhost.seed`` or on devhost start.

The Graph user ids are fixed placeholders; in a real tenant they are the experts'
Entra object ids (the Teams meeting organizer).
"""

from __future__ import annotations

from appointments.catalogue import Channel
from appointments.model import Expert, WorkingHours, require_object_id
from appointments.ports import AppointmentRepository

WEEKDAYS_8_TO_16 = tuple(WorkingHours(d, "08:00", "16:00") for d in range(5))

DEMO_EXPERTS: tuple[Expert, ...] = (
    Expert(
        expert_id="6f1c2a4e-0b7d-4c1e-9a51-3d2f8e7c1a01",
        display_name="Matleena Malliharju",
        email="matleena.malliharju@pankki.example",
        title="Asuntolaina-asiantuntija",
        bank="Malliharjun Osuuspankki",
        topics=("loans.home-loan", "loans.consumer", "loans.payment-plan", "insurance.home"),
        languages=("fi", "en"),
        working_hours=WEEKDAYS_8_TO_16,
    ),
    Expert(
        expert_id="2b9e7d3c-5a8f-4f62-b0c4-7e1d9a6b2c02",
        display_name="Maija Suomalainen",
        email="maija.suomalainen@pankki.example",
        title="Sijoitusasiantuntija",
        bank="Esimerkkilän Osuuspankki",
        topics=("savings.funds", "savings.pension", "savings.equities", "daily.accounts", "loans.home-loan"),
        languages=("fi", "sv", "en"),
        working_hours=tuple(WorkingHours(d, "09:00", "17:00") for d in range(5)),
    ),
    Expert(
        expert_id="9d4a1f6b-3c2e-4b8a-8f17-5c6e0d3b4a03",
        display_name="Olli Osuuskuntalainen",
        email="olli.osuuskuntalainen@pankki.example",
        title="Asiakasneuvoja",
        bank="Malliharjun Osuuspankki",
        topics=("daily.accounts", "daily.cards", "insurance.personal", "insurance.home", "loans.consumer"),
        languages=("fi", "sv"),
        channels=(Channel.ONLINE, Channel.PHONE, Channel.BRANCH),
        working_hours=WEEKDAYS_8_TO_16,
    ),
)


def seed(repo: AppointmentRepository) -> int:
    """Upsert the demo experts (idempotent). Returns how many were written."""
    for expert in DEMO_EXPERTS:
        require_object_id(expert.expert_id)  # the directory's keys are Entra object ids
        repo.put_expert(expert)
    return len(DEMO_EXPERTS)


if __name__ == "__main__":
    import bootstrap

    print(f"seeded {seed(bootstrap.services().repo)} experts")
