"""The knowledge base: cited tuning rules, their conditions, loading, matching and search.

Installed as ``pytest_goblin.kb`` (never as a top-level ``kb``, which would shadow a
user's own module). Rules live in ``rules/*.yaml``, one file per category; see
``schema`` for the rule format and ``conditions`` for the ``when`` language.
"""

from pytest_goblin.kb.conditions import Condition, ConditionError, evaluate, parse_condition
from pytest_goblin.kb.facts import AuditFacts
from pytest_goblin.kb.loader import KnowledgeBase, KnowledgeBaseError, MatchResult, load_kb
from pytest_goblin.kb.schema import CATEGORIES, DEVICE_PLATFORMS, Examples, Rule, example_case
from pytest_goblin.kb.search import search

__all__ = [
    "CATEGORIES",
    "DEVICE_PLATFORMS",
    "AuditFacts",
    "Condition",
    "ConditionError",
    "Examples",
    "KnowledgeBase",
    "KnowledgeBaseError",
    "MatchResult",
    "Rule",
    "evaluate",
    "example_case",
    "load_kb",
    "parse_condition",
    "search",
]
