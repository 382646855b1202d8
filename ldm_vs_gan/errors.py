"""Errors that reach the user as one line (no traceback): bad config values, missing weights.

The entry points (``train``, ``eval``, ``sample``, ``compare``) catch :class:`UserError` and print
``error: <message>`` to stderr and exit with status 2, so every message here must stand alone:
name the config key, the value given, and what is allowed or what to provide.
"""

from __future__ import annotations

from collections.abc import Iterable


class UserError(Exception):
    """A problem the user can fix by changing a config value, a flag or a file on disk."""


class ConfigError(UserError):
    """A config value that cannot work. Build it with :func:`bad_value` for a uniform message."""


class MissingWeightsError(UserError):
    """A pretrained weight (or data set) that is not on this machine and cannot be downloaded."""


def bad_value(key: str, value, allowed: Iterable | str) -> ConfigError:
    """``ConfigError("model.unet.size='huge' is not allowed; choose one of: tiny, toy, sd")``."""
    if not isinstance(allowed, str):
        allowed = ", ".join(str(a) for a in allowed)
    return ConfigError(f"{key}={value!r} is not allowed; choose one of: {allowed}")


def require(cond: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``cond`` holds (checks before any work)."""
    if not cond:
        raise ConfigError(message)
