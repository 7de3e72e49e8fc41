"""Reading model responses: the code block a code-generation response answers with.

Shared by the code reward (train), the CodeRL+ harvest (alignment) and evaluation (eval).
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_code(response: str) -> str | None:
    """The last fenced code block of a response (the official code's rule: the last ```python
    block; an untagged fence counts too, and an unclosed final fence runs to the end)."""
    blocks = _FENCE.findall(response)
    if not blocks:
        return None
    code = blocks[-1].strip("\n")
    return code if code.strip() else None
