"""Seeded, realistic message content: chat turns of a few hundred bytes to ~20 KB, some with tool calls."""

from __future__ import annotations

import json
import math
import random

_WORDS = (
    "session gateway deploy volume machine sqlite commit journal checkpoint restart "
    "agent tool result memory context token model prompt summary error retry network "
    "cache package install build release fly region disk write read search index "
    "durable crash signal supervisor service worker queue schedule cron dashboard"
).split()
_ROLES = ("user", "assistant", "assistant", "tool")
_TOOLS = ("terminal", "read_file", "web_search", "write_file", "memory")


def text(rng: random.Random, size: int) -> str:
    """About ``size`` bytes of word salad that FTS can index."""
    words: list[str] = []
    length = -1  # the joined length: n words have n - 1 spaces between them
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


def size(rng: random.Random, low: int, high: int) -> int:
    """Log-uniform: most messages are short, some are large tool outputs."""
    # exp(log(x)) can come out just below x: clamp, or low == high gives low - 1
    return min(high, max(low, int(math.exp(rng.uniform(math.log(low), math.log(high))))))


def message(rng: random.Random, low: int, high: int) -> dict[str, object]:
    """Keyword arguments for ``append_message`` (without session_id)."""
    role = rng.choice(_ROLES)
    kwargs: dict[str, object] = {"role": role, "content": text(rng, size(rng, low, high))}
    if role == "assistant" and rng.random() < 0.3:
        call_id = f"call_{rng.getrandbits(48):012x}"
        kwargs["tool_calls"] = [
            {"id": call_id, "type": "function",
             "function": {"name": rng.choice(_TOOLS), "arguments": json.dumps({"q": text(rng, 40)})}}
        ]
        kwargs["finish_reason"] = "tool_calls"
    elif role == "tool":
        kwargs["tool_name"] = rng.choice(_TOOLS)
        kwargs["tool_call_id"] = f"call_{rng.getrandbits(48):012x}"
    if role != "tool":
        kwargs["token_count"] = rng.randint(5, 4000)
    return kwargs
