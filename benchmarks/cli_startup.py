"""Start-up time of the command line: `python -m benchmarks.cli_startup`.

Runs each command ``--repeats`` times in a fresh interpreter (what a user's shell does) and prints the
best and median wall time, and which heavy libraries the command imported. ``mmfuse --help`` and an
argument error must come back without importing torch (the target is under 0.5 s); ``mmfuse params``
is a command that needs torch, for scale.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "timm", "numpy", "gradio")
COMMANDS: dict[str, list[str]] = {
    "mmfuse --help": ["--help"],
    "mmfuse train --help": ["train", "--help"],
    "mmfuse evaluate --help": ["evaluate", "--help"],
    "mmfuse data check --help": ["data", "check", "--help"],
    "mmfuse train (no CONFIG: usage error)": ["train"],
    "mmfuse --version": ["--version"],
}

# Runs the CLI as the console script does, then reports which heavy modules were loaded.
_PROBE = """
import sys
from mmfuse.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stdout.flush()
print("\\nLOADED " + " ".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def run_once(args: list[str]) -> tuple[float, list[str]]:
    """Seconds for one fresh ``mmfuse ARGS`` and the heavy libraries it imported."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    loaded = done.stderr.rsplit("LOADED", 1)[-1].split() if "LOADED" in done.stderr else ["?"]
    return seconds, loaded


def measure(repeats: int = 5, commands: dict[str, list[str]] = COMMANDS) -> dict:
    results = {}
    for label, args in commands.items():
        times, loaded = [], []
        for _ in range(repeats):
            seconds, loaded = run_once(args)
            times.append(seconds)
        results[label] = {"best_s": min(times), "median_s": statistics.median(times), "imports": loaded}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    results = measure(args.repeats)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'command':<40} {'best (s)':>9} {'median (s)':>11}  heavy imports")
    for label, row in results.items():
        imports = ", ".join(row["imports"]) or "none"
        print(f"{label:<40} {row['best_s']:>9.3f} {row['median_s']:>11.3f}  {imports}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
