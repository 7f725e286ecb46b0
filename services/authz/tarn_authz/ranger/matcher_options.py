"""A resource definition's matcherOptions (wildCard, ignoreCase, quotedCaseSensitive,
quoteChars, replaceTokens, token delimiters) read as Ranger's RangerAbstractResourceMatcher
reads them, and its token replacement ('{USER}' in a policy value)."""
from __future__ import annotations

from collections.abc import Mapping

from .models import RangerResourceDef, UnsupportedPolicyFeature

DEFAULT_MATCHER = "org.apache.ranger.plugin.resourcematcher.RangerDefaultResourceMatcher"


def _bool_option(options: Mapping[str, str], name: str, default: bool) -> bool:
    value = options.get(name)
    return default if value is None else value.lower() == "true"


def _char_option(options: Mapping[str, str], name: str, default: str) -> str:
    value = options.get(name)
    return value[0] if value else default


class MatcherOptions:
    __slots__ = ("ignore_case", "quoted_case_sensitive", "quote_chars", "wildcard", "replace_tokens",
                 "token_start", "token_end", "token_escape", "token_prefix", "replace_req_expressions")

    def __init__(self, resource_def: RangerResourceDef):
        options = resource_def.matcher_options
        if resource_def.matcher not in (None, "", DEFAULT_MATCHER):
            raise UnsupportedPolicyFeature(f"resource {resource_def.name!r}: matcher {resource_def.matcher} is not supported")
        self.ignore_case = _bool_option(options, "ignoreCase", True)
        self.quoted_case_sensitive = _bool_option(options, "quotedCaseSensitive", False)
        self.quote_chars = options.get("quoteChars", '"')
        self.wildcard = _bool_option(options, "wildCard", True)
        self.replace_tokens = _bool_option(options, "replaceTokens", True)
        self.token_start = _char_option(options, "tokenDelimiterStart", "{")
        self.token_end = _char_option(options, "tokenDelimiterEnd", "}")
        self.token_escape = _char_option(options, "tokenDelimiterEscape", "\\")
        self.token_prefix = options.get("tokenDelimiterPrefix", "")
        if self.replace_tokens and (
            self.token_escape in (self.token_start, self.token_end)
            or any(c in self.token_prefix for c in (self.token_escape, self.token_start, self.token_end))
        ):
            self.replace_tokens = False  # Ranger disables token replacement on inconsistent delimiters
        self.replace_req_expressions = _bool_option(options, "replaceReqExpressions", True)

    def has_token(self, value: str) -> bool:
        return self.replace_tokens and (
            self.token_escape in value or (self.token_start in value and self.token_end in value))

    def replace(self, value: str, tokens: Mapping[str, str | None]) -> str:
        """StringTokenReplacer.replaceTokens: '{USER}' → the user; unknown tokens stay as written."""
        out: list[str] = []
        token: list[str] | None = None
        i = 0
        start, end, esc = self.token_start, self.token_end, self.token_escape
        while i < len(value):
            c = value[i]
            if c == esc:
                i += 1
                if i < len(value):
                    c = value[i]
                    if token is not None:
                        if c not in (esc, end):
                            token.append(esc)
                        token.append(c)
                    else:
                        if c not in (esc, start):
                            out.append(esc)
                        out.append(c)
                else:
                    (token if token is not None else out).append(esc)
                i += 1
                continue
            if token is None:
                if c == start:
                    token = []
                else:
                    out.append(c)
            elif c == end:
                raw = "".join(token)
                replaced = None
                if not self.token_prefix or raw.startswith(self.token_prefix):
                    replaced = tokens.get(raw[len(self.token_prefix):])
                out.append(replaced if replaced is not None else start + raw + end)
                token = None
            else:
                token.append(c)
            i += 1
        if token is not None:
            out.append(start + "".join(token))
        return "".join(out)
