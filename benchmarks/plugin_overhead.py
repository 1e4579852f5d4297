"""Overhead budgets of the plugin itself, measured side by side in one run.

(a) loading the plugin without --goblin adds < 5% to `pytest --collect-only` of a
    500-test suite (compared with `-p no:goblin`);
(b) `--goblin --goblin-fake` on 200 generated workloads completes within 2x the time
    pytest needs for 200 trivial test functions, and under 10 s;
(c) collecting 2,000 workload files takes under 2 s.

Each measurement is the median of several runs of a fresh pytest process, so
interpreter start-up is counted the same way on both sides. Prints figures;
asserts nothing (targets are reported next to the figures).

    python benchmarks/plugin_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOAD = """\
name: w{i}
model: qwen2.5-0.5b
batch_size: {batch}
seq_len: 512
precision: bf16
attention_impl: sdpa
optimizer: adamw_torch_fused
dataloader_workers: {workers}
"""


def make_python_suite(root: Path, tests: int) -> Path:
    suite = root / f"py{tests}"
    suite.mkdir()
    per_file = 50
    for f in range(tests // per_file):
        body = "\n".join(f"def test_{f}_{t}():\n    assert True\n" for t in range(per_file))
        (suite / f"test_mod{f}.py").write_text(body)
    return suite


def make_workloads(root: Path, count: int) -> Path:
    folder = root / f"w{count}"
    folder.mkdir()
    for i in range(count):
        text = WORKLOAD.format(i=i, batch=1 + i % 8, workers=4 * (i % 2))
        (folder / f"w{i}.goblin.yaml").write_text(text)
    return folder


def timed(args: list[str], cwd: Path, repeats: int) -> float:
    """Median wall time of a fresh `python -m pytest ...` process."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
            cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pytest.ini").write_text("[pytest]\n")
        suite = make_python_suite(root, 500)
        trivial = make_python_suite(root, 200)
        workloads = make_workloads(root, 200)
        many = make_workloads(root, 2000)

        without = timed(["--collect-only", "-p", "no:goblin", suite.name], root, repeats)
        with_plugin = timed(["--collect-only", suite.name], root, repeats)
        print(f"(a) collect-only, 500 tests: without plugin {without:.3f} s, with plugin "
              f"{with_plugin:.3f} s, overhead {100 * (with_plugin / without - 1):+.1f}% "
              "(target < 5%)")

        plain = timed([trivial.name], root, repeats)
        audited = timed(["--goblin", "--goblin-fake", workloads.name], root, repeats)
        print(f"(b) 200 trivial tests {plain:.3f} s; 200 fake audits {audited:.3f} s; "
              f"ratio {audited / plain:.2f}x (target < 2x, and < 10 s)")

        baseline = timed(["--collect-only", "-p", "no:goblin", "--co", suite.name], root, 1)
        collect = timed(["--goblin", "--goblin-fake", "--collect-only", many.name], root, repeats)
        print(f"(c) collect 2,000 workload files: {collect:.3f} s (target < 2 s; "
              f"a bare pytest start here takes about {baseline:.3f} s)")


if __name__ == "__main__":
    main()
