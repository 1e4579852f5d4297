"""A stand-in for pytest's cache in audit-cache tests: the same get/set, over a dict."""

from __future__ import annotations

import json
from typing import Any


class DictStore:
    """pytest.Cache's get/set over a dict; values go through JSON, as the real cache's do."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))
