"""The expert directory as the portal's views read it: in process, at most ``max_age`` stale.

Why a cache and not the expert's name copied onto every appointment: the directory is small
(a bank's experts, one Table partition, one query), it changes rarely (people join, leave, are
renamed), and what a view takes from it is a display name, for which a minute of staleness
harms no one. A copy on each record would make every directory change a fan-out rewrite of the
expert's future appointments, a second write path with failure modes of its own, to save one
query per instance per minute. Booking trusts it too, for the expert's existence, services and
hours: no double booking depends on it (the slot claim alone guards the expert's time), and an
expert removed or re-rostered within the minute can be booked as if the request had come a
minute earlier, the same race a fresh read has with a change made just after it.

An id the cached directory does not know is read on its own (a new expert is seen at once);
an unknown one is not remembered, so it is read again next time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

from appointments.model import Expert
from appointments.ports import AppointmentRepository

DEFAULT_MAX_AGE = timedelta(seconds=60)


class ExpertDirectory:
    """Thread-safe; one storage round trip per ``max_age`` for the whole directory."""

    def __init__(
        self,
        repo: AppointmentRepository,
        max_age: timedelta = DEFAULT_MAX_AGE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._repo = repo
        self._max_age = max_age.total_seconds()
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._experts: dict[str, Expert] = {}
        self._loaded_at: float | None = None

    def _fresh(self) -> dict[str, Expert]:
        with self._lock:
            now = self._monotonic()
            if self._loaded_at is None or now - self._loaded_at >= self._max_age:
                self._experts = {x.expert_id: x for x in self._repo.list_experts()}
                self._loaded_at = now
            return self._experts

    def all(self) -> dict[str, Expert]:
        """Every expert by id (a copy: callers may keep it)."""
        return dict(self._fresh())

    def get(self, expert_id: str) -> Expert | None:
        found = self._fresh().get(expert_id)
        if found is None:
            found = self._repo.get_expert(expert_id)
            if found is not None:
                with self._lock:
                    self._experts[expert_id] = found
        return found
