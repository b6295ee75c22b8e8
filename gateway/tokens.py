"""The local token estimate for count_tokens, used only where the routed backend has no counter.

Anthropic's tokenizer is not public. The estimate counts the characters of everything the model
reads (system, messages, tools) and divides by 3.5, the ratio seen for English prose and code
with Claude's tokenizer, rounding up. It errs on the high side, which is the safe side for
context sizing (Claude Code compacts a little early rather than overflow). Images and documents
count a flat 1,600 tokens each, about a full-size image.
"""

from __future__ import annotations

import math

CHARACTERS_PER_TOKEN = 3.5
TOKENS_PER_ATTACHMENT = 1_600
ATTACHMENT_TYPES = frozenset({"image", "document"})
# Structural keys whose values are not text the model reads.
NOT_READ_BY_THE_MODEL = frozenset({"type", "role", "cache_control", "id", "tool_use_id", "signature"})


def estimate_input_tokens(payload: dict[str, object]) -> int:
    counter = _Counter()
    for name in ("system", "messages", "tools"):
        counter.visit(payload.get(name))
    return max(1, math.ceil(counter.characters / CHARACTERS_PER_TOKEN) + counter.attachments * TOKENS_PER_ATTACHMENT)


class _Counter:
    def __init__(self) -> None:
        self.characters = 0
        self.attachments = 0

    def visit(self, value: object) -> None:
        if isinstance(value, str):
            self.characters += len(value)
        elif isinstance(value, list):
            for item in value:
                self.visit(item)
        elif isinstance(value, dict):
            if value.get("type") in ATTACHMENT_TYPES:
                self.attachments += 1
                return
            for key, item in value.items():
                if key not in NOT_READ_BY_THE_MODEL:
                    self.visit(item)


def admission_estimate(content_length: bytes | None, ceiling: int) -> int:
    """The input tokens a message is charged when admitted, before its body is read: its length
    in bytes over CHARACTERS_PER_TOKEN, which errs high (JSON's keys and quotes, cache reads that
    do not count), at most `ceiling`. A body of unknown length is charged the ceiling. The
    answer's usage corrects either (gateway/limits.py)."""
    if content_length is None or not content_length.isdigit():
        return ceiling
    return min(math.ceil(int(content_length) / CHARACTERS_PER_TOKEN), ceiling)
