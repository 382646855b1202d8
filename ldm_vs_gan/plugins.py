"""Plug-ins: named parts that the generic rooms look up instead of importing.

A generic room (``data``, ``components``, ``metrics``) knows its own built-in parts (shard, COCO
and folder sources; pretrained, file, run and random weights; Inception and CLIP features) and
asks this registry for any other name. A plug-in is a module that calls :func:`register` when it
is imported. The toy world (``ldm_vs_gan.toy``) is one, and a user's own data source, weight
source or feature extractor plugs in the same way (docs/ARCHITECTURE.md "Plug-ins").

Which modules are imported: :data:`BUILTIN`, then those named in ``$LDM_VS_GAN_PLUGINS``
(comma-separated module names), then those of a run's ``plugins`` config key
(``plugins=[mylab.data]``). Each is imported once, on the first lookup.

Kinds and what they register (a plain object with these attributes):

- ``data``: a source for ``data.name``: ``schema`` (the node's dataclass), ``open(c, split)``
  (the random-access source of a split, see ``data.build_source``), ``heldout_key`` (the key that
  sizes the held-out split, named in errors).
- ``clip`` / ``autoencoder``: a weight source for ``clip.source`` / ``autoencoder.source``:
  ``schema``, ``build(node, data_cfg)`` and ``check(node, data_cfg)`` (raise what ``build`` would
  for weights that are absent, without building).
- ``features``: a feature space for ``--feature``: ``build(data_cfg)`` -> a
  ``metrics.features.FeatureExtractor``.
- ``quick``: the in-training metrics of one ``data.name``: ``evaluate(family, batches, data_cfg)``.
- ``prepare``: first-use work: ``prepare(cfg, purpose)``, purpose ``data``, ``train``, ``eval``
  or ``sample``. The trainer, ``eval`` and ``sample`` call it before they build anything; it is
  the only place where data is generated or a model is trained on first use, and it says so on
  the console. Getters only load what a preparer made, or say how to make it.
"""

from __future__ import annotations

import importlib
import os

from ldm_vs_gan.errors import UserError, bad_value

BUILTIN = ("ldm_vs_gan.toy",)
KINDS = ("data", "clip", "autoencoder", "features", "quick", "prepare")
ENV = "LDM_VS_GAN_PLUGINS"

_TABLES: dict[str, dict[str, object]] = {k: {} for k in KINDS}
_LOADED: set[str] = set()


def register(kind: str, name: str, part) -> None:
    """Make ``part`` the ``kind`` named ``name`` (a later registration of a name replaces it)."""
    if kind not in KINDS:
        raise bad_value("plug-in kind", kind, KINDS)
    _TABLES[kind][name] = part


def unregister(kind: str, name: str) -> None:
    """Remove a registration (a test's plug-in, after the test)."""
    _TABLES[kind].pop(name, None)


def load(modules=()) -> None:
    """Import the built-in plug-ins, those of ``$LDM_VS_GAN_PLUGINS`` and ``modules`` (once each)."""
    env = [m.strip() for m in os.environ.get(ENV, "").split(",") if m.strip()]
    for name in [*BUILTIN, *env, *(modules or ())]:
        if name in _LOADED:
            continue
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise UserError(f"plug-in {name!r} (plugins / ${ENV}) cannot be imported: {e}") from None
        _LOADED.add(name)


def find(kind: str, name: str):
    """The registered part, or None."""
    load()
    return _TABLES[kind].get(name)


def names(kind: str) -> tuple[str, ...]:
    load()
    return tuple(_TABLES[kind])


def get(kind: str, name: str, key: str, builtin=()):
    """The registered part, or one line naming ``key`` and every allowed value."""
    part = find(kind, name)
    if part is None:
        raise bad_value(key, name, [*builtin, *names(kind)])
    return part


def prepare(cfg, purpose: str) -> None:
    """Every preparer's first-use work for ``cfg`` (``purpose``: data | train | eval | sample)."""
    load(list(cfg.get("plugins") or []) if hasattr(cfg, "get") else ())
    for part in list(_TABLES["prepare"].values()):
        part.prepare(cfg, purpose)
