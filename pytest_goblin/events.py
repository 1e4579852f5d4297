"""Audit events for people: the JSON-lines log (``--goblin-events``) and the ``-v`` lines.

Both are redacted on the way out: values of secret-named environment
variables and token-shaped strings never reach a log file or a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_goblin.printable import printable
from pytest_goblin.redact import environment_secrets, redact_known
from pytest_goblin.schemas import AuditEvent

LIVE_WIDTH = 160
"""Live lines are cut here: a thought or an argument list is a glimpse, the log has it all."""


class EventRecorder:
    """Collects one item's events as log records, and shows them live when given a writer."""

    def __init__(self, nodeid: str, write_line: Callable[[str], None] | None = None) -> None:
        self.nodeid = nodeid
        self.records: list[dict[str, Any]] = []
        self._write_line = write_line
        self._secrets = environment_secrets()

    def __call__(self, event: AuditEvent) -> None:
        data = redact_known(event.data, self._secrets)
        self.records.append(
            {
                "nodeid": self.nodeid,
                "seq": len(self.records),
                "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "type": event.type,
                "data": data,
            }
        )
        if self._write_line is not None:
            self._write_line(live_line(event.type, data))


def live_line(kind: str, data: dict[str, Any]) -> str:
    """One indented line under the item: a thought, a call, its result, the outcome."""
    if kind == "thought":
        text = f"thought: {' '.join(str(data.get('text', '')).split())}"
    elif kind == "tool_call":
        arguments = json.dumps(data.get("input", {}), default=str, ensure_ascii=False)
        text = f"-> {data.get('name')} {arguments}"
    elif kind == "tool_result":
        text = f"<- {data.get('name')}: {_result_summary(data)}"
    elif kind in ("waiting", "progress"):
        text = str(data.get("text", ""))
    elif kind == "final_report":
        # in measured mode the verdict's own paired rounds follow and may move the number
        text = f"agent's estimate: {data.get('report', {}).get('summary_line', '')}"
    else:
        text = f"error: {' '.join(str(data.get('message', '')).split())}"
    line = f"    {printable(text)}"  # a model's thought may hold anything
    return line if len(line) <= LIVE_WIDTH else line[: LIVE_WIDTH - 1] + "…"


def _result_summary(data: dict[str, Any]) -> str:
    if not data.get("ok"):
        return f"error: {' '.join(str(data.get('error', '')).split())}"
    result = data.get("result")
    ids = (
        [
            f"{key} {value}"
            for key, value in result.items()
            if key.endswith("_id") and isinstance(value, str)
        ]
        if isinstance(result, dict)
        else []
    )
    return "ok" + (f" ({', '.join(ids)})" if ids else "")


def start_log(path: Path) -> None:
    """Begin an empty log for this session."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("", encoding="utf-8")


def append_records(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Add one item's records, one JSON object per line."""
    with path.open("a", encoding="utf-8") as log:
        for record in records:
            log.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
