"""Helpers that compile regexes; nothing to do with training."""
import re

PATTERN = re.compile(r"loss=([0-9.]+)")


def parse(line: str) -> float | None:
    match = PATTERN.search(line)
    return float(match.group(1)) if match else None
