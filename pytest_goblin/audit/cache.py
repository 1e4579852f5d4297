"""The audit cache: an audit whose inputs did not change is not run again.

A projected audit is a pure function of its inputs: the workload (its file's
text, and the config and settings read from it and its sidecar), the knowledge
base (every rule, bundled or from a pack), the plugin version, the backend and
its model, the waived rules, the runner mode and the device. The key is a hash
of all of them; the value is the audit's Report. The threshold is not an input:
the verdict is decided again from the Report on every run.

Only projected audits are kept. A measured audit's point is the measurement, and
a GPU gate that reused last week's numbers would miss a driver regression.

The store is anything with pytest's ``Cache`` interface (``get(key, default)``,
``set(key, value)``, JSON values), so this module needs no pytest. An entry that
cannot be read back (edited by hand, written by another version) is a miss,
never an error. Each entry carries a digest of its key and report, so an entry
edited after it was written (a failing audit's numbers turned into a pass by hand,
or a report copied under another key) is a miss too: the gate re-audits instead of
trusting it.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, Protocol

from pydantic import ValidationError

from pytest_goblin import __version__
from pytest_goblin.schemas import DeviceInfo, Report

if TYPE_CHECKING:
    from pytest_goblin.kb.loader import KnowledgeBase
    from pytest_goblin.workload.read import Workload

ENTRY_VERSION: Final = 2
"""2: entries carry ``digest`` (version 1 entries had none and are misses)."""
KEY_PREFIX: Final = "goblin/audit/"
"""Entries live under ``.pytest_cache/v/goblin/audit/``."""


class Store(Protocol):
    """The part of ``pytest.Cache`` the audit cache uses."""

    def get(self, key: str, default: Any) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


_kb_digests: weakref.WeakKeyDictionary[KnowledgeBase, str] = weakref.WeakKeyDictionary()


def kb_digest(kb: KnowledgeBase) -> str:
    """A hash of every rule's content, computed once per knowledge base."""
    if kb not in _kb_digests:
        rules = [rule.model_dump(mode="json") for rule in kb.rules]
        _kb_digests[kb] = _digest(rules)
    return _kb_digests[kb]


class AuditCache:
    """Reports of earlier audits, by ``key``.

    ``extensions`` names whatever else can change what an audit does, as the
    caller knows it (the plugins that provide backends or runners): part of
    every key.
    """

    def __init__(self, store: Store, extensions: Iterable[str] = ()) -> None:
        self._store = store
        self._extensions = sorted(extensions)

    def key(
        self,
        workload: Workload,
        kb: KnowledgeBase,
        device: DeviceInfo,
        backend: str,
        model: str | None,
        base_url: str | None,
        ignore: Iterable[str],
    ) -> str:
        """The key of a projected audit of ``workload`` with these inputs."""
        from pytest_goblin.history import device_fingerprint

        source = workload.source
        return KEY_PREFIX + _digest(
            {
                "plugin": __version__,
                "extensions": self._extensions,
                "file": {"path": source.display_path, "format": source.format, "text": source.text},
                "name": workload.name,
                "config": workload.config.model_dump(mode="json"),
                "settings": workload.settings.model_dump(mode="json"),
                "kb": kb_digest(kb),
                "backend": backend,
                "model": model,
                "base_url": base_url,
                "ignore": sorted(ignore),
                "mode": "projected",
                "device": device_fingerprint(device),
            }
        )

    def load(self, key: str) -> Report | None:
        """The Report saved under ``key``, or None when there is none or it is unusable."""
        entry = self._store.get(key, None)
        if not isinstance(entry, dict) or entry.get("version") != ENTRY_VERSION:
            return None
        data = entry.get("report")
        if entry.get("digest") != _entry_digest(key, data):
            return None
        try:
            return Report.model_validate(data)
        except ValidationError:
            return None

    def save(self, key: str, report: Report) -> None:
        data = report.model_dump(mode="json")
        self._store.set(
            key, {"version": ENTRY_VERSION, "report": data, "digest": _entry_digest(key, data)}
        )


def _entry_digest(key: str, report: Any) -> str:
    """What an entry's ``digest`` must be: its key and report, hashed together."""
    return _digest({"key": key, "report": report})


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
