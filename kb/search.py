"""Text search over rules, for the agent's free-text symptoms.

Structured matching (``KnowledgeBase.match``) decides which rules apply; this ranks
rules for a description such as "GPU idle between steps, dataloader slow". It is
BM25 over each rule's id, category, symptom, expected impact and advice, with the id
and category counted twice because they name the topic. No embeddings and no model
download: results are deterministic and cost nothing to compute for a few hundred
rules.

Several queries give one list, ranked globally: a rule's score is its best score
over the queries. Ties
are broken by id, and only rules with a score above zero are returned.

The rules' term counts and the corpus statistics are computed once per set of rules
(an audit queries the same knowledge base several times, a session hundreds of
times) and kept for the few most recent sets.
"""

from __future__ import annotations

import math
import re
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from pytest_goblin.kb.schema import Rule

_K1: Final = 1.2
_B: Final = 0.75
_TOKEN: Final = re.compile(r"[a-z0-9]+")
_STOP: Final = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "into",
        "is",
        "it",
        "its",
        "no",
        "not",
        "of",
        "on",
        "or",
        "so",
        "than",
        "that",
        "the",
        "their",
        "then",
        "there",
        "this",
        "to",
        "too",
        "use",
        "used",
        "uses",
        "via",
        "when",
        "which",
        "while",
        "with",
    ]
)
_KEPT_INDEXES: Final = 8


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens without stop words, plural ``s`` stripped.

    Splitting on every non-alphanumeric character makes ``dataloader_workers``,
    ``data-loader`` and ``num_workers`` share tokens with the prose of a symptom.
    """
    return [_singular(t) for t in _TOKEN.findall(text.lower()) if len(t) > 1 and t not in _STOP]


def search(
    kb: Iterable[Rule], queries: str | Sequence[str], top_k: int = 5
) -> list[tuple[Rule, float]]:
    """The ``top_k`` rules best matching any of ``queries``, best first, scores > 0.

    ``kb`` is a ``KnowledgeBase`` or any iterable of rules, so a caller can search
    only the rules that structured matching already found applicable.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    texts = [queries] if isinstance(queries, str) else list(queries)
    rules = list(kb)
    if not rules:
        return []
    index = _index(rules)
    best: dict[str, tuple[Rule, float]] = {}
    for text in texts:
        scores: dict[int, float] = {}
        for term in set(tokenize(text)):
            for position, weight in index.postings.get(term, ()):
                scores[position] = scores.get(position, 0.0) + weight
        for position, score in scores.items():
            rule = rules[position]
            if score > 0 and score > best.get(rule.id, (rule, 0.0))[1]:
                best[rule.id] = (rule, score)
    ranked = sorted(best.values(), key=lambda item: (-item[1], item[0].id))
    return ranked[:top_k]


@dataclass(frozen=True)
class _Index:
    """BM25 over one list of rules, as postings: for each term, the rules that have
    it with the term's whole contribution to their score."""

    rules: tuple[Rule, ...]
    postings: dict[str, list[tuple[int, float]]]


_indexes: OrderedDict[tuple[int, ...], _Index] = OrderedDict()


def _index(rules: list[Rule]) -> _Index:
    """The index of ``rules``, built on first use.

    Keyed by the rules' identities; a cached index holds its rules, so an id in
    a key cannot be reused by another object while the entry lives.
    """
    key = tuple(map(id, rules))
    cached = _indexes.get(key)
    if cached is not None:
        _indexes.move_to_end(key)
        return cached
    docs = [Counter(_document(rule)) for rule in rules]
    lengths = [sum(doc.values()) for doc in docs]
    average = sum(lengths) / len(docs)
    frequency = Counter(term for doc in docs for term in doc)
    postings: dict[str, list[tuple[int, float]]] = {}
    for position, (doc, length) in enumerate(zip(docs, lengths, strict=True)):
        norm = _K1 * (1 - _B + _B * length / average)
        for term, count in doc.items():
            weight = _idf(len(docs), frequency[term]) * count * (_K1 + 1) / (count + norm)
            postings.setdefault(term, []).append((position, weight))
    built = _Index(rules=tuple(rules), postings=postings)
    _indexes[key] = built
    if len(_indexes) > _KEPT_INDEXES:
        _indexes.popitem(last=False)
    return built


def _document(rule: Rule) -> list[str]:
    topic = tokenize(f"{rule.id} {rule.category}")
    prose = tokenize(f"{rule.symptom} {rule.expected_impact} {rule.advice or ''}")
    return topic * 2 + prose


def _idf(n_docs: int, n_with_term: int) -> float:
    return math.log(1 + (n_docs - n_with_term + 0.5) / (n_with_term + 0.5))


def _singular(token: str) -> str:
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token
