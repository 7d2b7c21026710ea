"""The expert's time on Table Storage (``SlotLedger``): one row per claimed grid cell.

Cells are claimed with *inserts* in one transaction per appointment or hold: the Table service
refuses the whole batch if any cell is taken, so nobody is double-booked; a retry that finds the
cells held by the same booking code treats them as its own. A hold's cells carry its expiry and
may be taken over (ETag-conditional) once it has passed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError

from adapters.tables.mappers import EXPERT_SLOTS, HOLD_EXPIRES, SLOT_HOLDS, hold_entity, hold_from
from adapters.tables.store import MAX_BATCH, TableAdapter, etag_options
from appointments.ports import SlotHold, SlotTaken
from appointments.timerules import iso, parse_utc


def _cell_key(cell: datetime) -> str:
    return iso(cell)


def _hold_holder(hold_id: str) -> str:
    from appointments.availability import hold_key

    return hold_key(hold_id)


def _expired_hold(row: Any, now: datetime | None) -> bool:
    expires = row.get(HOLD_EXPIRES)
    return bool(expires) and now is not None and parse_utc(str(expires)) <= now


class TableSlotLedger(TableAdapter):
    """``SlotLedger`` on the ``ExpertSlots`` and ``SlotHolds`` tables."""

    def claim(
        self,
        expert_id: str,
        booking_code: str,
        cells: Iterable[datetime],
        *,
        now: datetime | None = None,
        hold_id: str | None = None,
        hold_expires_at: datetime | None = None,
    ) -> list[datetime]:
        """Claim every cell in one transaction; cells this booking (or hold) already has are fine.
        Returns the cells this call wrote (not those the booking had already), so that a caller
        who then finds the booking made already can give back exactly those.

        Free cells, the common case, cost one round trip: all are inserted at once, and only
        when that fails (the transaction is atomic: nothing was written) are they read, to tell
        our own retry, an expired hold or our hold from a taken slot. A cell of a hold that
        expired before ``now``, or of the hold ``hold_id`` (ours, being converted), is taken over
        with an ETag-conditional replace in one transaction, so of two claimants racing for it
        exactly one wins. Without ``now`` every hold counts as live.
        """
        table = self.table(EXPERT_SLOTS)
        wanted = list(cells)
        keys = [_cell_key(c) for c in wanted]
        if len(keys) > MAX_BATCH:
            raise ValueError(f"an appointment may claim at most {MAX_BATCH} cells")
        extra = {HOLD_EXPIRES: iso(hold_expires_at)} if hold_expires_at is not None else {}
        takeover = {_hold_holder(hold_id)} if hold_id else set()

        def entity(key: str) -> dict[str, Any]:
            return {"PartitionKey": expert_id, "RowKey": key, "BookingCode": booking_code, **extra}

        if not takeover and keys:
            try:
                table.submit_transaction([("create", entity(key)) for key in keys])
                return wanted
            except TableTransactionError:
                pass  # some cell exists: look at each
        ops: list[tuple[Any, ...]] = []
        written: list[datetime] = []
        for cell, key in zip(wanted, keys, strict=True):
            try:
                row = table.get_entity(expert_id, key)
            except ResourceNotFoundError:
                ops.append(("create", entity(key)))
                written.append(cell)
                continue
            holder = row["BookingCode"]
            if holder == booking_code:
                continue
            if holder in takeover or _expired_hold(row, now):
                ops.append(("update", entity(key), etag_options(row.metadata["etag"])))
                written.append(cell)
                continue
            raise SlotTaken(f"expert slot {key} is {'held' if row.get(HOLD_EXPIRES) else 'taken'}")
        if not ops:
            return []
        try:
            table.submit_transaction(ops)
        except TableTransactionError as exc:
            # Lost a race for at least one cell. Whoever won, re-check: it may be ourselves (a retry).
            for op in ops:
                key = op[1]["RowKey"]
                try:
                    holder = table.get_entity(expert_id, key)["BookingCode"]
                except ResourceNotFoundError:
                    raise SlotTaken("expert slot changed while booking; try again") from exc
                if holder != booking_code:
                    raise SlotTaken(f"expert slot {key} is taken") from exc
            return []  # a parallel retry of this booking wrote them
        return written

    def release_cells(self, expert_id: str, booking_code: str, cells: list[datetime]) -> None:
        table = self.table(EXPERT_SLOTS)
        for cell in cells:
            try:
                row = table.get_entity(expert_id, _cell_key(cell))
            except ResourceNotFoundError:
                continue
            if row["BookingCode"] != booking_code:
                continue  # somebody else's now; never free another booking's cell
            try:
                table.delete_entity(
                    row, etag=row.metadata["etag"], match_condition=MatchConditions.IfNotModified
                )
            except (ResourceNotFoundError, ResourceModifiedError):
                continue

    def taken_cells(self, expert_id: str, start: datetime, end: datetime, now: datetime) -> set[datetime]:
        rows = self.table(EXPERT_SLOTS).query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
            parameters={"pk": expert_id, "lo": iso(start), "hi": iso(end)},
            select=["RowKey", HOLD_EXPIRES],
        )
        return {parse_utc(r["RowKey"]) for r in rows if not _expired_hold(r, now)}

    def hold(self, hold: SlotHold, cells: list[datetime], *, now: datetime) -> None:
        self.claim(
            hold.expert_id, _hold_holder(hold.hold_id), cells, now=now, hold_expires_at=hold.expires_at
        )
        self.table(SLOT_HOLDS).upsert_entity(hold_entity(hold))

    def get_hold(self, hold_id: str) -> SlotHold | None:
        e = self.read(SLOT_HOLDS, hold_id, "")
        return None if e is None else hold_from(hold_id, e)

    def release_hold(self, hold: SlotHold, cells: list[datetime]) -> None:
        self.release_cells(hold.expert_id, _hold_holder(hold.hold_id), cells)
        self.forget_hold(hold.hold_id)

    def forget_hold(self, hold_id: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table(SLOT_HOLDS).delete_entity(hold_id, "")
