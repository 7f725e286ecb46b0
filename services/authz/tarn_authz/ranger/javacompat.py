"""The few Java behaviours Ranger's decisions depend on: String.equalsIgnoreCase,
java.util.HashSet iteration order, and commons-io wildcard matching."""
from __future__ import annotations

import re
from collections.abc import Iterable


def fold_case(text: str) -> str:
    """A length-preserving case fold that agrees with Java's char-wise equalsIgnoreCase."""
    if text.isascii():
        return text.lower()
    out = []
    for ch in text:
        upper = ch.upper()
        if len(upper) != 1:
            upper = ch
        lower = upper.lower()
        out.append(lower if len(lower) == 1 else upper)
    return "".join(out)


def java_string_hash(text: str) -> int:
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h


def java_hash_order(items: Iterable[str]) -> list[str]:
    """Iteration order of a java.util.HashSet (or HashMap keys) filled by add() in this order."""
    unique: list[str] = []
    seen: set[str] = set()
    for item in items:
        if item not in seen:
            seen.add(item)
            unique.append(item)
    capacity = 16
    while len(unique) > capacity * 3 // 4:
        capacity *= 2
    def bucket(value: str) -> int:
        h = java_string_hash(value)
        return (h ^ (h >> 16)) & (capacity - 1)
    return [v for _, _, v in sorted((bucket(v), i, v) for i, v in enumerate(unique))]


def wildcard_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """FilenameUtils.wildcardMatch: '?' is exactly one character, '*' any run; whole string."""
    parts = []
    for ch in (fold_case(pattern) if ignore_case else pattern):
        if ch == "*":
            if not parts or parts[-1] != ".*":
                parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def split_wildcard_tokens(pattern: str) -> list[str]:
    if "?" not in pattern and "*" not in pattern:
        return [pattern]
    tokens: list[str] = []
    literal: list[str] = []
    previous = ""
    for ch in pattern:
        if ch not in "?*":
            literal.append(ch)
        else:
            if literal:
                tokens.append("".join(literal))
                literal = []
            if ch == "?":
                tokens.append("?")
            elif previous != "*":
                tokens.append("*")
        previous = ch
    if literal:
        tokens.append("".join(literal))
    return tokens


def wildcard_prefix_match(value: str, tokens: list[str]) -> bool:
    """Ranger's wildcardPrefixMatch: could `value` be the beginning of a string the pattern
    matches? Same backtracking walk as Ranger's ResourceMatcher, on pre-folded inputs."""
    any_chars = False
    text_idx = 0
    token_idx = 0
    backtrack: list[tuple[int, int]] = []
    first = True
    while first or backtrack:
        first = False
        if backtrack:
            token_idx, text_idx = backtrack.pop()
            any_chars = True
        while token_idx < len(tokens):
            token = tokens[token_idx]
            if token == "?":
                text_idx += 1
                if text_idx > len(value):
                    break
                any_chars = False
            elif token == "*":
                any_chars = True
                if token_idx == len(tokens) - 1:
                    text_idx = len(value)
            else:
                if len(token) > len(value) - text_idx:
                    token = token[: len(value) - text_idx]
                if any_chars:
                    text_idx = value.find(token, text_idx)
                    if text_idx == -1:
                        break
                    repeat = value.find(token, text_idx + 1)
                    if repeat >= 0:
                        backtrack.append((token_idx, repeat))
                elif not value.startswith(token, text_idx):
                    break
                text_idx += len(token)
                any_chars = False
            token_idx += 1
        if token_idx == len(tokens) or text_idx == len(value):
            return True
    return any_chars
