"""The README's curl walk-through, run as written (only the host's and the Graph emulator's
addresses change) on a devhost like ``make run``'s: virtual clock, dev mode, the demo booking."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from devhost import demo
from devhost.azurite import PROJECT_ROOT
from tests.e2e.browser_helpers import own_stack
from tests.e2e.conftest import Stack, customer_headers

README = PROJECT_ROOT / "README.md"


def walkthrough() -> str:
    """Every ``sh`` block of the walk-through section, in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## A curl walk-through") : text.index("## HTTP API")]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert blocks, "no sh block in the walk-through"
    return "\n".join(blocks)


@pytest.fixture(scope="module")
def demo_stack() -> Iterator[Stack]:
    """Like ``make run``: a virtual clock on a fresh stack of its own."""
    with own_stack(clock="virtual") as stack:
        yield stack


@pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq")), reason="the walk-through needs curl and jq"
)
def test_the_readme_walkthrough_runs_as_written_and_leaves_the_demo_booking_usable(
    demo_stack: Stack,
) -> None:
    """Book, reschedule, look up, join, admit, verify, end, cancel another: all as the README says."""
    demo_host, stack = demo_stack.host, demo_stack
    demo_code = demo.book_demo_appointment(demo_host.base_url)
    assert demo_code
    script = (
        walkthrough()
        .replace("http://localhost:7071", demo_host.base_url)
        .replace("http://127.0.0.1:7072", stack.graph.origin)
    )
    run = subprocess.run(  # noqa: S603 - our own README, through bash
        ["/bin/bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "KEY": demo_host.function_key},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    booked = re.search(r"^booked ([A-Z0-9]{8})$", run.stdout, re.MULTILINE)
    assert booked, run.stdout
    demo_host.wait_idle()
    assert stack.repo.get_by_code(booked.group(1)).phase.value == "ended"  # type: ignore[union-attr]
    assert '"phase":"cancelled"' in run.stdout, run.stdout
    assert '"runtimeStatus":"' in run.stdout, run.stdout  # the management API took the key
    assert '"customerName":"Demo Asiakas"' in run.stdout, run.stdout
    upcoming = demo_host.get("/api/appointments", headers=customer_headers(demo.DEMO_CUSTOMER)).json()
    mine = {a["bookingCode"]: a for a in upcoming["appointments"]}
    assert mine[demo_code]["phase"] == "booked", "the walk-through spoiled the demo booking"
