"""Run the test suite once per Keras backend (torch, jax, tensorflow).

Usage: `python tests/run_backends.py [pytest args]`. Every backend runs, even
after a failure; the exit status is non-zero if any run failed.
"""

import importlib.util
import os
import re
import subprocess
import sys

BACKENDS = ("torch", "jax", "tensorflow")
# Most of the time goes to graph compilation, which is single-threaded: one
# worker per core halves the wall time. The long tests are collected first
# (tests/conftest.py); a worker that runs out of tests takes half of the
# other's queue, so the pass ends on short tests.
PARALLEL = (
    ["-n", "2", "--dist", "worksteal"] if importlib.util.find_spec("xdist") else []
)


def main(argv):
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    status = 0
    for backend in BACKENDS:
        print(f"=== KERAS_BACKEND={backend} ===", flush=True)
        env = {**os.environ, "KERAS_BACKEND": backend}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--durations=10",
                *PARALLEL,
                *argv,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        print(result.stdout, flush=True)
        summary = result.stdout.strip().splitlines()[-1] if result.stdout else ""
        for count, word in re.findall(
            r"(\d+) (passed|failed|skipped|errors?)", summary
        ):
            totals["failed" if word.startswith("error") else word] += int(count)
        if result.returncode != 0:
            status = 1
    print(
        f"total: {totals['passed']} passed, {totals['failed']} failed, "
        f"{totals['skipped']} skipped"
    )
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
