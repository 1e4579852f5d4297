"""The processes a test must see end: a worker's process group, read from /proc."""

from __future__ import annotations

from pathlib import Path


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (a device worker's: its ranks run in it)."""
    members = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(proc.name))
    return members
