"""Typed config nodes: one dataclass per config group (or node), the single source of defaults.

A room declares its node as a dataclass whose field defaults are the shipped YAML values, and reads
the composed node with :func:`read`, which gives a typed object or one line naming the key:

    @dataclass
    class CacheConfig:
        latents: bool = False
        text: bool = True
        max_entries: int = 200_000

    cache = schema.read(CacheConfig, cfg.model.get("cache"), "model.cache")

A missing key gets the dataclass default; a key the dataclass does not have, a value of the wrong
type (``abc`` for an int) or one its ``check`` refuses is a :class:`ConfigError` naming
``<prefix>.<key>``. YAML files then state values only; a config without a key gets the same
model as the shipped YAML.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ldm_vs_gan.errors import ConfigError

T = TypeVar("T")


def _where(prefix: str, ex: OmegaConfBaseException) -> str:
    key = getattr(ex, "full_key", None) or ""
    return f"{prefix}.{key}" if key else prefix


def read(schema: type[T], node: Any, prefix: str) -> T:
    """``node`` (a DictConfig, dict or None) merged onto ``schema``'s defaults, as a ``schema``;
    every nested dataclass's ``check(prefix)`` runs, innermost first."""
    base = OmegaConf.structured(schema)
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    try:
        obj = OmegaConf.to_object(OmegaConf.merge(base, node or {}))
    except OmegaConfBaseException as ex:
        what = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        if type(ex).__name__ == "ConfigKeyError":
            key = _where(prefix, ex)
            parent = _schema_at(schema, key[len(prefix) + 1 :].split(".")[:-1])
            allowed = ", ".join(f.name for f in dataclasses.fields(parent)) if parent else "?"
            raise ConfigError(f"{key} is not a known key; allowed here: {allowed}") from None
        raise ConfigError(f"{_where(prefix, ex)}: {what}") from None
    _check(obj, prefix)
    return obj


def _schema_at(schema, path: list[str]):
    """The nested dataclass at ``path`` (field annotations may be strings: resolve them)."""
    for name in path:
        if not dataclasses.is_dataclass(schema):
            return None
        schema = typing.get_type_hints(schema).get(name)
    return schema if dataclasses.is_dataclass(schema) else None


def _check(obj, prefix: str) -> None:
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            _check(v, f"{prefix}.{f.name}")
    check = getattr(obj, "check", None)
    if check is not None:
        check(prefix)


def choice(prefix: str, key: str, value, allowed) -> None:
    """``value`` must be one of ``allowed``; else one line naming ``prefix.key``."""
    if value not in allowed:
        raise ConfigError(
            f"{prefix}.{key}={value!r} is not allowed; choose one of: {', '.join(map(str, allowed))}"
        )


def at_least(prefix: str, key: str, value, minimum) -> None:
    """``value >= minimum``; else one line naming ``prefix.key``."""
    if value is not None and value < minimum:
        raise ConfigError(f"{prefix}.{key}={value!r} is not allowed; choose a value >= {minimum}")
