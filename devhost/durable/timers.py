"""Durable timers, due by the devhost clock (real, virtual or frozen).

Timers are not persisted here: a TimerCreated without its TimerFired in the history *is* the
durable record, and a restart re-arms it (a late one fires at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable
from datetime import datetime

from ..clock import Clock, ClockMode

FireCallback = Callable[[str, str, int, datetime], None]
# A virtual clock also moves with wall time; look again at least this often (seconds).
MAX_SLEEP = 1.0


class ClockLoop:
    """A task that fires what falls due on the devhost clock, woken whenever the clock moves
    (from any thread) or something new is armed. Subclasses say what is due and fire it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        clock.subscribe(self._clock_moved)

    def next_due(self) -> datetime | None:
        raise NotImplementedError

    def fire_due(self) -> int:
        raise NotImplementedError

    def start_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._task = self._loop.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _clock_moved(self) -> None:
        # Called from whichever thread moved the clock.
        if self._loop is not None and self._changed is not None:
            self._loop.call_soon_threadsafe(self._changed.set)

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _run(self) -> None:
        assert self._changed is not None
        while True:
            self.fire_due()
            await wait_for_change(self.clock, self._changed, self.next_due())


class TimerService(ClockLoop):
    def __init__(self, clock: Clock, on_fire: FireCallback) -> None:
        super().__init__(clock)
        self.on_fire = on_fire
        self._heap: list[tuple[datetime, int, str, str, int]] = []
        self._order = itertools.count()

    def start(self) -> None:
        self.start_loop()

    def arm(self, fire_at: datetime, instance_id: str, execution_id: str, timer_id: int) -> None:
        heapq.heappush(self._heap, (fire_at, next(self._order), instance_id, execution_id, timer_id))
        self._wake()

    def has_due(self) -> bool:
        return bool(self._heap) and self._heap[0][0] <= self.clock.now()

    def next_due(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None

    def fire_due(self) -> int:
        """Fire every timer that is due now (the engine ignores cancelled or obsolete ones)."""
        now, fired = self.clock.now(), 0
        while self._heap and self._heap[0][0] <= now:
            fire_at, _, instance_id, execution_id, timer_id = heapq.heappop(self._heap)
            self.on_fire(instance_id, execution_id, timer_id, fire_at)
            fired += 1
        return fired


async def wait_for_change(clock: Clock, changed: asyncio.Event, due: datetime | None) -> None:
    """Sleep until ``changed`` is set or ``due`` may have come (a frozen clock moves only when
    told, which sets ``changed``; a moving one is looked at again at least every MAX_SLEEP s)."""
    timeout: float | None = None
    if due is not None and clock.mode is not ClockMode.FROZEN:
        timeout = max(0.0, min((due - clock.now()).total_seconds(), MAX_SLEEP))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(changed.wait(), timeout)
    changed.clear()
