"""What the bank keeps, and for how long: the retention policy and its sweeps (docs/DEPLOY.md).

Four sweeps, each run by a timer trigger (``timer_triggers/retention.py``):

- ``erase_personal_data``: ``PERSONAL_DATA_RETENTION_DAYS`` after a finished appointment's end,
  its phone number, e-mail, free text, join link and the customer's id leave Appointments,
  the code index (with the Idempotency-Key's fingerprint) and Outbox. The record keeps code,
  times, phase, channel, topic and expert, so operators and the audit trail still make sense. Failure counters
  (keyed by customer id or caller address) untouched for as long go too;
- ``purge_durable_history``: finished orchestrations whose last update is older than
  ``DURABLE_RETENTION_DAYS`` lose their Durable history;
- ``expire_audit``: the audit trail (``audit-`` rows of each booking's partition) is
  append-only; rows older than ``AUDIT_RETENTION_YEARS``
  are the only ones ever deleted;
- ``sweep_slots``: expired slot holds, and expert cells that no live booking or hold owns.

Every sweep is idempotent and resumable: it selects only work still to do, each item is a
few idempotent, conditional writes, and a run stops after ``limit`` items and says that more
remain; the next run (or a crash's retry) continues from whatever is left.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from appointments.model import Appointment

# A customer id is at most 128 printable characters (appointments/principal.py), so no
# customer can ever own this 136-character partition: it holds the records whose owner
# was erased.
ERASED_PARTITION = "~erased~" * 17
DEFAULT_LIMIT = 500  # items per run: a run stays far below the 10-minute function timeout
# A booking claims its cells before it writes its record: a cell whose booking has no
# record may be one being written right now. Only one this old is an orphan.
ORPHAN_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class RetentionPolicy:
    durable_days: int = 30
    personal_data_days: int = 90
    audit_years: int = 6

    def personal_data_cutoff(self, now: datetime) -> datetime:
        """Appointments that ended before this lose their personal data."""
        return now - timedelta(days=self.personal_data_days)

    def durable_cutoff(self, now: datetime) -> datetime:
        return now - timedelta(days=self.durable_days)

    def audit_cutoff(self, now: datetime) -> datetime:
        # Calendar years: 29 February falls back to 28 February.
        try:
            return now.replace(year=now.year - self.audit_years)
        except ValueError:
            return now.replace(year=now.year - self.audit_years, day=28)


@dataclass
class SweepReport:
    """What one run did: counts only, never an identifier that could name a person."""

    sweep: str
    examined: int = 0
    changed: int = 0
    skipped: int = 0
    more: bool = False  # the run hit its limit: work remains for the next run
    details: dict[str, int] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.details[key] = self.details.get(key, 0) + n

    def as_dict(self) -> dict[str, object]:
        return {
            "sweep": self.sweep,
            "examined": self.examined,
            "changed": self.changed,
            "skipped": self.skipped,
            "more": self.more,
            **self.details,
        }


def is_erasable(a: Appointment, now: datetime, policy: RetentionPolicy) -> bool:
    """Finished, ended before the cutoff, and not erased yet."""
    return (
        a.phase.is_terminal
        and a.customer_id != ERASED_PARTITION
        and a.end <= policy.personal_data_cutoff(now)
    )


def erased(a: Appointment) -> Appointment:
    """The record that remains: code, times, phase, channel, topic, language and expert."""
    return a.with_changes(
        customer_id=ERASED_PARTITION, phone="", email=None, extra_info="", join_url=None, etag=None
    )


class RetentionStore(Protocol):
    """The table side of the sweeps (``adapters/retention.py``). Every write is idempotent."""

    def appointments_started_before(self, cutoff: datetime) -> Iterable[Appointment]:
        """Not-yet-erased records that started before ``cutoff``."""
        ...

    def erase(self, a: Appointment) -> dict[str, int]:
        """Re-key the record under ERASED_PARTITION without personal data, point the code index at
        it, delete the customer's Outbox and Idempotency-Key rows for it; returns counts per table."""
        ...

    def counters_untouched_since(self, cutoff: datetime) -> Iterable[tuple[str, str, str]]:
        """(table, partition, row) of failure and throttle counters (keyed by customer id or caller
        address) not written since ``cutoff``: their blocks ran out long ago, and an address is
        personal data."""
        ...

    def delete_counter(self, table: str, partition: str, row: str) -> bool: ...

    def audit_partitions_before(self, cutoff: datetime) -> Iterable[tuple[str, list[str]]]:
        """(booking code, row keys) of Audit rows written before ``cutoff``."""
        ...

    def delete_audit(self, booking_code: str, row_keys: list[str]) -> int: ...

    def expired_holds(self, now: datetime) -> Iterable[str]:
        """Ids of slot holds that expired before ``now``."""
        ...

    def release_hold(self, hold_id: str) -> int:
        """Free the hold's cells that it still has and forget it; returns the cells freed."""
        ...

    def orphaned_cells(self, now: datetime, grace: timedelta) -> Iterable[tuple[str, str, str]]:
        """(expert id, cell key, etag) of cells held by an expired hold, by a booking with no record
        (written more than ``grace`` ago), or by a booking that no longer claims that cell."""
        ...

    def delete_cell(self, expert_id: str, cell_key: str, etag: str) -> bool:
        """Delete the cell only if unchanged since it was read (a new claim wins)."""
        ...


class FinishedInstance(Protocol):
    @property
    def instance_id(self) -> str: ...

    @property
    def last_updated(self) -> datetime: ...


class DurableHistory(Protocol):
    """The Durable client's side of the purge (``adapters/retention.py``)."""

    def finished_before(self, cutoff: datetime) -> Awaitable[Sequence[FinishedInstance]]: ...

    def purge(self, instance_id: str) -> Awaitable[bool]: ...


def _limited[T](items: Iterable[T], report: SweepReport, limit: int) -> Iterable[T]:
    for item in items:
        if report.examined >= limit:
            report.more = True
            return
        report.examined += 1
        yield item


def erase_personal_data(
    store: RetentionStore, now: datetime, policy: RetentionPolicy, *, limit: int = DEFAULT_LIMIT
) -> SweepReport:
    report = SweepReport("personal_data")
    for a in _limited(store.appointments_started_before(policy.personal_data_cutoff(now)), report, limit):
        if not is_erasable(a, now, policy):
            # Still running (stuck: the ops view lists it) or not over long enough yet.
            report.skipped += 1
            continue
        for table, n in store.erase(a).items():
            report.count(table, n)
        report.changed += 1
    for table, partition, row in _limited(
        store.counters_untouched_since(policy.personal_data_cutoff(now)), report, limit
    ):
        if store.delete_counter(table, partition, row):
            report.count(table)
            report.changed += 1
    return report


def expire_audit(
    store: RetentionStore, now: datetime, policy: RetentionPolicy, *, limit: int = DEFAULT_LIMIT
) -> SweepReport:
    report = SweepReport("audit")
    for code, keys in _limited(store.audit_partitions_before(policy.audit_cutoff(now)), report, limit):
        report.changed += store.delete_audit(code, keys)
    return report


def sweep_slots(
    store: RetentionStore, now: datetime, *, limit: int = DEFAULT_LIMIT, grace: timedelta = ORPHAN_GRACE
) -> SweepReport:
    report = SweepReport("slots")
    for hold_id in _limited(store.expired_holds(now), report, limit):
        report.count("cellsFreed", store.release_hold(hold_id))
        report.count("holds")
        report.changed += 1
    for expert_id, key, etag in _limited(store.orphaned_cells(now, grace), report, limit):
        if store.delete_cell(expert_id, key, etag):
            report.count("orphanedCells")
            report.changed += 1
        else:
            report.skipped += 1  # claimed again since we read it: it is somebody's now
    return report


async def purge_durable_history(
    history: DurableHistory, now: datetime, policy: RetentionPolicy, *, limit: int = DEFAULT_LIMIT
) -> SweepReport:
    """Purge by the time an instance *finished*: Durable's own purge-by filter knows only the
    creation time, which for a booking made 90 days ahead would purge it days after its end."""
    report = SweepReport("durable")
    cutoff = policy.durable_cutoff(now)
    for instance in _limited(await history.finished_before(cutoff), report, limit):
        if instance.last_updated > cutoff:
            report.skipped += 1
            continue
        if await history.purge(instance.instance_id):
            report.changed += 1
        else:
            report.skipped += 1  # purged meanwhile (an overlapping run)
    return report
