"""Condense stage (offline): a follow-up question + chat history -> a standalone query.

"What about in primary care?" after "How did innovators persuade late adopters?" is searched
as "How did innovators persuade late adopters? What about in primary care?". A question that
already stands alone is searched as it is. The LLM chain may replace this with an LLM rewrite.
"""

from __future__ import annotations

import re
from typing import Any

_FOLLOW_UP_START = re.compile(
    r"^\s*(and|but|also|so|then|what about|how about|and what|what else|why|how so|"
    r"which of (them|these|those)|tell me more|more on|same for|in that case|what if)\b",
    re.IGNORECASE,
)
_ANAPHORA = re.compile(
    r"\b(it|its|they|them|their|this|that|these|those|he|she|his|her|there|the same|such|"
    r"the innovation|the case|that case|this case|the report|above|earlier|previous)\b",
    re.IGNORECASE,
)
_MAX_HISTORY_QUESTIONS = 2


def message_text(content: Any) -> str:
    """Plain text of a chat message's content (a string, or a list of parts as Gradio 6 sends)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    if isinstance(content, (list, tuple)):
        return " ".join(message_text(part) for part in content).strip()
    return str(content)


def user_turns(history: list[Any] | None) -> list[str]:
    """The user's earlier questions, oldest first, from message dicts or (user, bot) pairs."""
    turns: list[str] = []
    for item in history or []:
        if isinstance(item, dict):
            if item.get("role") == "user":
                turns.append(message_text(item.get("content")))
        elif isinstance(item, (list, tuple)) and item:
            turns.append(message_text(item[0]))
    return [t.strip() for t in turns if t and t.strip()]


def is_follow_up(question: str) -> bool:
    """Does this question lean on an earlier turn to make sense?"""
    words = question.split()
    if _FOLLOW_UP_START.search(question):
        return True
    return len(words) <= 8 and bool(_ANAPHORA.search(question))


class RuleBasedCondenser:
    """Rewrites follow-ups into standalone queries by carrying the earlier question along."""

    def condense(self, question: str, history: list[Any] | None = None, budget: Any = None) -> str:
        """The standalone query to search with (`budget`, the reply's LLM time, is for the LLM
        condenser: the rules take no time)."""
        question = question.strip()
        earlier = user_turns(history)
        if not earlier or not is_follow_up(question):
            return question
        carried: list[str] = []
        for turn in reversed(earlier):
            carried.insert(0, turn)
            if not is_follow_up(turn) or len(carried) >= _MAX_HISTORY_QUESTIONS:
                break
        return " ".join([*carried, question])
