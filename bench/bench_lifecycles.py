"""N online lifecycles booked → ended with 10 concurrent clients, then the same with Graph
answering 30% of its calls with 429 or 503; every outcome checked exactly.

    .venv/bin/python bench/bench_lifecycles.py [--n 70] [--faulty 70] [--clients 10]

Each stack first drives one lifecycle alone (the baseline of the same run, and the source of
the per-lifecycle mail and audit counts that the N must match exactly), then the N at once.
N is what fits ``make bench``'s 10 minutes on a 2-core machine, not the issue's 1,000: the
rate is reported, so the time 1,000 would take follows from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lifecycles import Outcome, run_load, stack


def check(o: Outcome, one: Outcome) -> list[str]:
    """What is not exactly as it must be (empty when all is)."""
    wrong = []
    if o.completed != o.n:
        wrong.append(f"{o.n - o.completed} of {o.n} instances not Completed")
    if not o.one_meeting_each or o.meetings != o.n:
        wrong.append(f"{o.meetings} meetings for {o.n} bookings")
    if o.mails != o.n * one.mails or o.duplicate_mails:
        wrong.append(f"{o.mails} mails, expected {o.n * one.mails}; {o.duplicate_mails} keys sent twice")
    if o.audit_rows != o.n * one.audit_rows:
        wrong.append(f"{o.audit_rows} audit rows, expected {o.n * one.audit_rows}")
    return wrong


def measure(n: int, clients: int, fault_rate: float) -> tuple[Outcome, Outcome]:
    with stack(n + 1, fault_rate=fault_rate) as s:
        one = run_load(s, 1, 1)
        many = run_load(s, n, clients, first=1)
    return one, many


def report(title: str, one: Outcome, many: Outcome, clients: int) -> bool:
    wrong = check(many, one) + [f"(alone) {w}" for w in check(one, one)]
    print(f"\n#### {title}\n")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| one lifecycle alone, booked → ended (baseline) | {one.seconds:.1f} s |")
    print(f"| {many.n} lifecycles, {clients} clients | {many.seconds:.1f} s |")
    print(f"| lifecycles/s | **{many.rate:.2f}** ({many.rate * one.seconds:.1f}× one alone) |")
    print(f"| 1,000 lifecycles at this rate would take | {1000 / many.rate / 60:.0f} min |")
    print(
        f"| setting the clock into {many.n} join windows (timers fire, meetings made) | "
        f"{many.clock_set_seconds:.1f} s |"
    )
    print(f"| instances Completed | {many.completed} / {many.n} |")
    print(f"| Teams meetings (exactly one per booking: {many.one_meeting_each}) | {many.meetings} |")
    print(
        f"| mails (expected {many.n} × {one.mails}), keys sent twice | {many.mails}, {many.duplicate_mails} |"
    )
    print(f"| audit rows (expected {many.n} × {one.audit_rows}) | {many.audit_rows} |")
    fault_note = f", {many.graph_faults} of them answered 429/503" if many.graph_faults else ""
    print(f"| Graph calls | {many.graph_calls}{fault_note} |")
    print(f"| devhost peak RSS | {many.peak_rss_mb:.0f} MB |")
    print(
        f"| CPU per lifecycle: devhost, Azurite | {many.devhost_cpu_s / many.n:.2f} s, "
        f"{many.azurite_cpu_s / many.n:.2f} s |"
    )
    print(f"| all exactly as expected | **{'yes' if not wrong else 'NO: ' + '; '.join(wrong)}** |")
    print("\n| call | n | p50 ms | p95 ms |")
    print("|---|---:|---:|---:|")
    for call, count, p50, p95 in many.calls.summary():
        print(f"| {call} | {count} | {p50 * 1000:.0f} | {p95 * 1000:.0f} |")
    return not wrong


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=70)
    parser.add_argument("--faulty", type=int, default=70)
    parser.add_argument("--clients", type=int, default=10)
    args = parser.parse_args()
    one, many = measure(args.n, args.clients, 0.0)
    ok = report(f"{args.n} lifecycles", one, many, args.clients)
    if args.faulty:
        f_one, f_many = measure(args.faulty, args.clients, 0.3)
        ok &= report(
            f"{args.faulty} lifecycles, Graph answering 30% of calls with 429 or 503",
            f_one,
            f_many,
            args.clients,
        )
        print(
            f"\nSeconds per lifecycle with faults against without, same run: "
            f"{(f_many.seconds / f_many.n) / (many.seconds / many.n):.2f}×"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
