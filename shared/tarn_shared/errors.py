"""The project's error types: library errors are translated into these at one choke point."""
from __future__ import annotations


class TarnError(Exception):
    """Base of every error TARN raises on purpose; the message is meant for an operator."""


class ConfigError(TarnError):
    """Invalid or missing configuration; raised at start, before any work is done."""


class SchemaError(TarnError):
    """A payload that cannot be decoded into a known event."""


class UnsupportedVersion(SchemaError):
    """An event of a major version this consumer does not understand."""


class UnavailableError(TarnError):
    """An outside system (Redis, ZooKeeper, HDFS, HAProxy, Ranger) cannot be reached."""


class AuthError(TarnError):
    """A caller is not authenticated or not allowed."""
