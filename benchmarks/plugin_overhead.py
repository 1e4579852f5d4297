"""Overhead budgets of the plugin itself, measured side by side in one run.

(a) loading the plugin without --goblin adds < 5% to `pytest --collect-only` of a
    500-test suite (compared with `-p no:goblin`);
(b) `--goblin --goblin-fake` on 200 generated workloads completes within 4x the time
    pytest needs for 200 trivial test functions, and under 10 s;
(c) collecting 2,000 workload files takes under 2 s.

Each figure is the median wall time of several fresh pytest processes, so
interpreter start-up counts the same way on both sides, and the two sides of a
ratio run alternately, so that a load change on the machine hits both alike.
Every command runs once untimed first and the children may write bytecode (this
script drops PYTHONDONTWRITEBYTECODE from their environment): what is timed is a
user's second run, not Python compiling every module from source. The audit
cache is off throughout (`-p no:cacheprovider`): (b) measures real audits; its
floor line is a `--collect-only` of the same workloads (imports, rules, reading
and validating the files, no audit), and the last line shows what the cache
saves on a second run. Prints figures, asserts
nothing (the targets are printed next to them).

    python benchmarks/plugin_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
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
NO_CACHE = ("-p", "no:cacheprovider")


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


def run(args: list[str], cwd: Path) -> float:
    """Wall time of one fresh `python -m pytest -q ...` process."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - start


def timed(sides: list[list[str]], cwd: Path, repeats: int) -> list[float]:
    """The median wall time of each command, the commands run in turn, after a warm-up."""
    for args in sides:
        run(args, cwd)
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(repeats):
        for side, args in zip(times, sides, strict=True):
            side.append(run(args, cwd))
    return [statistics.median(side) for side in times]


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

        without, with_plugin = timed(
            [
                [*NO_CACHE, "--collect-only", "-p", "no:goblin", suite.name],
                [*NO_CACHE, "--collect-only", suite.name],
            ],
            root,
            repeats,
        )
        print(
            f"(a) collect-only, 500 tests: without plugin {without:.3f} s, with plugin "
            f"{with_plugin:.3f} s, overhead {100 * (with_plugin / without - 1):+.1f}% "
            "(target < 5%)"
        )

        plain, collected, audited = timed(
            [
                [*NO_CACHE, trivial.name],
                [*NO_CACHE, "--goblin", "--goblin-fake", "--collect-only", workloads.name],
                [*NO_CACHE, "--goblin", "--goblin-fake", workloads.name],
            ],
            root,
            repeats,
        )
        print(
            f"(b) 200 trivial tests {plain:.3f} s; 200 fake audits {audited:.3f} s; "
            f"ratio {audited / plain:.2f}x (target < 4x, and < 10 s)"
        )
        print(
            f"    floor: collecting the 200 workload files, no audit: {collected:.3f} s "
            f"({collected / plain:.2f}x the trivial tests)"
        )

        bare, collect = timed(
            [
                [*NO_CACHE, "--collect-only", "-p", "no:goblin", suite.name],
                [*NO_CACHE, "--goblin", "--goblin-fake", "--collect-only", many.name],
            ],
            root,
            repeats,
        )
        print(
            f"(c) collect 2,000 workload files: {collect:.3f} s (target < 2 s; "
            f"a bare pytest start here takes about {bare:.3f} s)"
        )

        trivial_again, cached = timed(
            [
                [*NO_CACHE, trivial.name],
                ["--goblin", "--goblin-fake", workloads.name],
            ],
            root,
            repeats,
        )
        print(
            f"    200 audits reused from the audit cache: {cached:.3f} s "
            f"({cached / trivial_again:.2f}x the trivial tests, measured beside them)"
        )


if __name__ == "__main__":
    main()
