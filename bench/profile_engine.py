"""Where the devhost's time goes under load: py-spy samples every thread of ``python -m devhost``
while ``bench.lifecycles`` drives N online lifecycles through it.

    .venv/bin/python bench/profile_engine.py [--n 40] [--top 30]

Prints the functions with the most samples, inclusive (on the stack) and exclusive (running),
with the share of all samples; ``--raw FILE`` keeps py-spy's collapsed stacks for a flame graph.
Not part of ``make bench`` (a profile is for reading, not for comparing runs).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lifecycles import run_load, stack


def frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` → ``func (file.py)``: lines apart, one function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--raw", type=Path)
    parser.add_argument("--workers", default="1", help="FUNCTIONS_WORKER_PROCESS_COUNT of the devhost")
    parser.add_argument("--gil", action="store_true", help="only the thread holding the GIL: where CPU goes")
    args = parser.parse_args()
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        raise SystemExit("py-spy is not installed (requirements-dev.txt)")
    raw = args.raw or Path(tempfile.mkstemp(suffix=".txt")[1])
    with stack(args.n + 1, env={"FUNCTIONS_WORKER_PROCESS_COUNT": args.workers}) as s:
        run_load(s, 1, 1)
        assert s.host.process is not None
        recorder = subprocess.Popen(  # noqa: S603 - py-spy from our own venv
            [
                spy,
                "record",
                "--pid",
                str(s.host.process.pid),
                "--format",
                "raw",
                "--output",
                str(raw),
                "--rate",
                "50",
                "--nonblocking",
                "--threads",
                "--subprocesses",
                *(["--gil"] if args.gil else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        outcome = run_load(s, args.n, 10, first=1)
        recorder.send_signal(2)  # SIGINT: py-spy writes its file and exits
        recorder.wait(60)
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack_text.split(";")
        names = [frame_name(f) for f in frames[1:]] or ["(no frame)"]
        total += count
        exclusive[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    rate = f"{outcome.n} lifecycles in {outcome.seconds:.1f} s ({outcome.rate:.2f}/s)"
    print(f"{rate}; {total} samples at 50 Hz\n")
    for title, counter in (("inclusive", inclusive), ("exclusive", exclusive)):
        print(f"\n| function ({title}) | share |\n|---|---:|")
        for name, count in counter.most_common(args.top):
            print(f"| `{name}` | {count / total:.1%} |")


if __name__ == "__main__":
    main()
