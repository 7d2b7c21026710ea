"""``python -m bench``: run every ``bench/bench_*.py`` in its own process, one after another."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = 0
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n=== {script.stem} ===", flush=True)
        result = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, check=False)  # noqa: S603
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
