"""API fuzzing, the long run: tests/reporter/test_api_fuzz.py with many examples per operation of
the OpenAPI document (default 1000: about 10,000 generated requests, each sent with a user token
and an ops token), against the real engine. Prints pytest's per-operation outcome and a summary;
any 5xx fails the run with the request that caused it.

    .venv/bin/python -m bench.bench_fuzz                 # 1000 examples per operation
    .venv/bin/python -m bench.bench_fuzz --examples 200
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=1000, help="examples per API operation (default 1000)")
    args = ap.parse_args()
    if not 1 <= args.examples <= 100_000:
        ap.error("--examples is 1 to 100000")
    env = {**os.environ, "FUZZ_EXAMPLES": str(args.examples), "TZ": "UTC"}
    started = time.monotonic()
    # -v: one line per API operation as it finishes, the progress of a long run.
    rc = subprocess.call([sys.executable, "-m", "pytest", "tests/reporter/test_api_fuzz.py", "-v", "-p", "no:cacheprovider"],
                         cwd=ROOT, env=env)
    print(f"API fuzzing: {args.examples} examples per operation, {time.monotonic() - started:.0f} s, "
          f"{'no server error' if rc == 0 else 'FAILED (see above)'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
