"""Case: how long ``import <module>`` takes in a fresh interpreter.

Run: ``python bench/cases/imports.py --module {pqlsdk,posthog} [--quick]``.
Each repetition is a new ``python -c`` process timing only the import
statement (``time.perf_counter`` around it), so interpreter start-up is not
counted; the figure is the median over the repetitions, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _case import emit, quick

PROBE = """
import time
start = time.perf_counter()
import {module}
print((time.perf_counter() - start) * 1000)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = 3 if quick() else 15
    timings = [
        float(
            subprocess.run(
                [sys.executable, "-c", PROBE.format(module=args.module)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        for _ in range(runs)
    ]
    emit("import", args.module, statistics.median(timings), unit="ms")


if __name__ == "__main__":
    main()
