"""Word error rate, as the ASR tests and benchmarks measure it."""

from __future__ import annotations

import re


def words(text: str) -> list[str]:
    """Lower-cased words with punctuation removed, as word error rate compares them."""
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance on words (substitutions + deletions + insertions)."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        prev, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ref != hyp))
    return row[-1]
