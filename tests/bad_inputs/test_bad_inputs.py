"""Broken and unusual inputs through the public entry points, crash-proof.

The corpus (`corpus.py`, written by the test) holds media in many containers,
codecs, channel layouts and damaged forms, annotation and class-name files,
and checkpoints. Every case runs in a subprocess (`probe.py`), so a native
crash fails its case instead of killing the suite. Each must end as the corpus
says: read correctly (finite values, right shapes, the expected properties),
or an error of the package's own types whose message names the file.

The entry points are backend-free (PyAV, NumPy, torch for `.pth` files), so
the corpus runs once, in the torch pass.
"""

import collections
import dataclasses
import json
import os

import keras
import pytest

from tests.bad_inputs.corpus import all_cases
from tests.bad_inputs.probe import run_cases

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def verdict(case, result):
    """`None` if the result is what the case allows, else what is wrong."""
    outcome = result["outcome"]
    if outcome == "crash":
        return f"the process died (status {result['returncode']})"
    if outcome == "foreign":
        return f"raised {result['type']}, not a package error: {result['message']}"
    if outcome == "error":
        if case.expect == "ok":
            return f"expected it to be read; got {result['type']}: {result['message']}"
        name = os.path.basename(case.path.rstrip("/"))
        if name not in result["message"]:
            return f"the message does not name {name}: {result['message']}"
        return None
    if case.expect == "error":
        return f"expected an error; it was read ({result})"
    if not result["finite"]:
        return "non-finite values came back"
    if not result["shape_ok"]:
        return f"wrong shapes or types ({result})"
    wrong = {k: (result.get(k), v) for k, v in case.check.items() if result.get(k) != v}
    return f"got / expected {wrong}" if wrong else None


@pytest.mark.skipif(
    keras.config.backend() != "torch",
    reason="backend-free entry points: run once, in the torch pass",
)
def test_every_bad_input_is_read_or_refused_by_name(tmp_path):
    cases = all_cases(tmp_path / "corpus")
    env = {**os.environ, "PYTHONPATH": REPO}
    results = run_cases(
        [dataclasses.asdict(case) for case in cases], str(tmp_path), env=env
    )
    counts = collections.Counter(results[case.name]["outcome"] for case in cases)
    print(f"\n{len(cases)} cases: {dict(counts)}")
    problems = {
        case.name: problem
        for case in cases
        if (problem := verdict(case, results[case.name])) is not None
    }
    assert not problems, json.dumps(problems, indent=1)
    # The corpus exercises both sides.
    assert counts["ok"] > 50 and counts["error"] > 80
