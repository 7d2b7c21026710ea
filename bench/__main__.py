"""``python -m bench``: run every ``bench/bench_*.py`` in its own process, one after another,
and write what they printed, with the machine, date and command, into ``bench/README.md``
(between the results markers; the rest of that file is kept as it is).

``python -m bench bench_api bench_worker`` runs only those (and leaves the README alone).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text(encoding="ascii").split()[1])
        mem = f", {kb / 1024 / 1024:.1f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    one, five, fifteen = os.getloadavg()
    load = f", load average {one:.1f} {five:.1f} {fifteen:.1f} at the start"
    return (
        f"{os.cpu_count()} × {cpu}{mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}{load}"
    )


def run(script: Path) -> tuple[str, int, float]:
    print(f"\n=== {script.stem} ===", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and scripts
        [sys.executable, str(script)], cwd=HERE.parent, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    out = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        out.append(line)
    return "".join(out), proc.wait(), time.perf_counter() - t0


def write_readme(header: str, sections: list[tuple[str, str, int, float]]) -> None:
    body = [BEGIN, "", header, ""]
    for name, text, code, seconds in sections:
        status = "" if code == 0 else f" — **exited with {code}**"
        body += [f"### {name} ({seconds:.0f} s){status}", "", text.strip(), ""]
    body.append(END)
    old = README.read_text(encoding="utf-8") if README.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    head, _, rest = old.partition(BEGIN)
    _, _, tail = rest.partition(END)
    README.write_text(head + "\n".join(body) + tail, encoding="utf-8")


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if s.stem in argv]
    started = datetime.now(UTC)
    header_machine = machine()
    t0 = time.perf_counter()
    sections = [(s.stem, *run(s)) for s in scripts]
    total = time.perf_counter() - t0
    failed = sum(code != 0 for _, _, code, _ in sections)
    if not argv:
        header = (
            f"Command: `make bench` (`python -m bench`), {started:%Y-%m-%d %H:%M} UTC, "
            f"{total / 60:.1f} min in all.  \nMachine: {header_machine}."
        )
        write_readme(header, sections)
        print(f"\nwrote {README.relative_to(HERE.parent)} ({total / 60:.1f} min)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
