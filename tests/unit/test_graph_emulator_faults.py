"""The Graph emulator's injected faults: which requests they hit."""

from __future__ import annotations

from devhost.graph_emulator.state import EmulatorState, Fault


def test_a_fault_with_a_body_pattern_hits_only_the_requests_whose_body_matches() -> None:
    """Tests share one emulator: a fault pinned to one appointment's code in the body (a
    subscription's notificationUrl names it) leaves another appointment's identical call alone."""
    state = EmulatorState()
    state.add_fault(Fault(path=r"/subscriptions$", method="POST", status=403, body="appointment=AAAA1111"))
    other = '{"notificationUrl": "https://x/api/graph/notifications?appointment=BBBB2222"}'
    mine = '{"notificationUrl": "https://x/api/graph/notifications?appointment=AAAA1111"}'
    assert state.take_fault("POST", "/beta/subscriptions", other) is None
    assert state.take_fault("GET", "/beta/subscriptions", mine) is None  # the method still counts
    fault = state.take_fault("POST", "/beta/subscriptions", mine)
    assert fault is not None and fault.status == 403
    assert state.take_fault("POST", "/beta/subscriptions", mine) is None  # count=1: used up


def test_a_fault_without_a_body_pattern_hits_any_body() -> None:
    state = EmulatorState()
    state.add_fault(Fault(path=r"/sendMail$", status=503, count=2))
    assert state.take_fault("POST", "/v1.0/users/x/sendMail", '{"message": {}}') is not None
    assert state.take_fault("POST", "/v1.0/users/x/sendMail") is not None
    assert state.take_fault("POST", "/v1.0/users/x/sendMail") is None
