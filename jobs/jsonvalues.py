"""What a job's JSON may hold: nothing a database cannot store and return as it was sent."""

from __future__ import annotations

import re
from typing import Any

# PostgreSQL's jsonb and text refuse NUL; a lone surrogate is not Unicode, so it cannot be encoded
# as UTF-8 (the database, the JSON answer). Refused on every database alike.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
RULE = "text may not contain NUL characters or lone surrogates"


def json_depth(value: Any) -> int:
    """Return how deeply arrays and objects nest in `value` (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def unstorable_text(value: Any, where: str = "") -> str | None:
    """Describe a string in `value` (a key or a value) that cannot be stored, and where; None if there is none."""
    stack = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if found := _UNSTORABLE.search(item):
                return _describe(found.group(), path)
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and (found := _UNSTORABLE.search(key)):
                    return _describe(found.group(), f"a key of {path or 'the object'}")
                stack.append((child, f"{path}.{key}" if path else str(key)))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return None


def clean_text(text: str) -> str:
    """Return `text` with NUL characters and lone surrogates written as escapes, so it can be stored."""
    return _UNSTORABLE.sub(lambda found: _escape(found.group()), text)


def _escape(char: str) -> str:
    return f"\\u{ord(char):04x}"


def _describe(char: str, path: str) -> str:
    kind = "a NUL character" if char == "\x00" else "a lone surrogate"
    path = path or "the value"
    # Keys are the client's text: keep a long path readable.
    return f"{kind} ({_escape(char)}) in {path if len(path) <= 120 else path[:117] + '...'}"
