"""How fast the Graph webhook answers, against Graph's 3-second budget and a no-storage route.

Graph retries and throttles an endpoint that does not answer 2xx within 3 s. The webhook
checks the clientState, decrypts rich content, verifies the POST's validationTokens and hands
over (a raised event), with no storage work before it answers. Measured on the local host
through the real worker: a forged POST (clientState mismatch), and a genuine rich call-ended
(encrypted for the app's certificate, signed tokens, a fresh notification id each time).
Baseline: ``GET /api/topics`` (no storage). Run: ``python bench/bench_graph_webhook.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.graph_webhook import client_state_for, meeting_call_events_resource  # noqa: E402
from adapters.notification_crypto import NotificationCertificate  # noqa: E402
from devhost import azurite  # noqa: E402
from devhost.graph_emulator import GraphEmulator  # noqa: E402
from devhost.graph_emulator.app import _collection, call_event_notification  # noqa: E402
from devhost.graph_emulator.crypto import throwaway_certificate  # noqa: E402
from devhost.graph_emulator.state import graph_time  # noqa: E402
from devhost.testing import DevhostProcess  # noqa: E402

ROUNDS = 40
SECRET = "bench-client-state-secret-0123456789"  # noqa: S105 - a benchmark's fixed fake secret
CODE = "BENCH234"
URL = "/api/graph/notifications"


def median_ms(fn, rounds: int = ROUNDS) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.95) - 1] * 1000


def main() -> None:
    pem = throwaway_certificate()
    cert = NotificationCertificate.load(pem, "bench")
    with azurite.running() as az, GraphEmulator() as graph:
        env = {
            "DEV_MODE": "true",
            **graph.app_settings(),
            "GRAPH_CLIENT_STATE": SECRET,
            "GRAPH_NOTIFICATION_CERTIFICATE": pem,
            "GRAPH_NOTIFICATION_CERTIFICATE_ID": "bench",
        }
        subscription = {
            "id": str(uuid.uuid4()),
            "expirationDateTime": graph_time(datetime.now(UTC) + timedelta(days=1)),
            "resource": meeting_call_events_resource("https://teams.example/l/meetup-join/bench"),
            "clientState": client_state_for(SECRET, CODE),
            "includeResourceData": True,
            "encryptionCertificate": cert.public_certificate,
            "encryptionCertificateId": cert.certificate_id,
        }
        with DevhostProcess(storage=az.connection_string, env=env) as host:

            def genuine() -> None:
                item = call_event_notification(subscription, "callEnded")
                payload = _collection(graph.state, graph.signing, [item], rich=True)
                r = host.post(URL, params={"appointment": CODE}, json=payload)
                assert r.status_code == 202, r.text

            def forged() -> None:
                item = {**call_event_notification(subscription, "callEnded"), "clientState": "guess"}
                assert host.post(URL, params={"appointment": CODE}, json={"value": [item]}).status_code == 202

            genuine()  # the first pays for the certificate and the key set
            topics = median_ms(lambda: host.get("/api/topics").raise_for_status())
            rich = median_ms(genuine)
            fake = median_ms(forged)
    print(f"{'measure':<58} {'median ms':>10} {'p95 ms':>8}")
    for label, (median, p95) in [
        ("GET /api/topics (baseline: no storage)", topics),
        ("webhook: genuine rich call-ended (decrypt, tokens, raise)", rich),
        ("webhook: forged POST (clientState mismatch)", fake),
    ]:
        print(f"{label:<58} {median:>10.1f} {p95:>8.1f}")
    print(f"\nGraph's budget is 3000 ms; the genuine notification uses {rich[1] / 30:.1f}% of it at p95.")


if __name__ == "__main__":
    main()
