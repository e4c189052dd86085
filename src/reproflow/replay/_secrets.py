"""Secrets left out of a record, asked for again at replay.

A parameter (or a part of one, or a command-line argument) redacted when recorded is a marker
``{"__rf__": "redacted", ...}`` (see :mod:`reproflow.values._scrub`). A replay never invents it: each
one is named by a path (``token``, ``config.db.password``, ``auth.1``, ``argv.3``) and taken from
``--param PATH=VALUE``, else from ``$REPROFLOW_PARAM_<PATH>`` (upper case, every other character
``_``: ``REPROFLOW_PARAM_CONFIG_DB_PASSWORD``); without either the replay stops with one line.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import errors
from ..values._redact import REDACTED
from ..values._scrub import is_redacted

PARAM_ENV_PREFIX = "REPROFLOW_PARAM_"
_TAG = "__rf__"


def env_name(path: str) -> str:
    """The environment variable that supplies the secret at ``path``."""
    return PARAM_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", path).upper()


def parse_params(items: list[str] | None) -> dict[str, str]:
    """``["NAME=VALUE", ...]`` from ``--param`` options.

    Raises:
        SecretParameterMissing: an item has no ``=``.
    """
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise errors.SecretParameterMissing(f"--param {item!r} is not NAME=VALUE; write it as --param NAME=VALUE")
        out[name.strip()] = value
    return out


def _typed_value(marker: dict[str, Any], value: str) -> Any:
    kind = marker.get("type", "str")
    if kind == "str":
        return value
    if kind == "bytes":
        return {_TAG: "bytes", "v": base64.b64encode(value.encode()).decode()}
    if kind == "path":
        return {_TAG: "path", "v": value}
    try:
        return json.loads(value)
    except ValueError:
        return value


@dataclass
class Supplied:
    """What the secrets of one replay are and where each comes from."""

    given: Mapping[str, str]
    environ: Mapping[str, str]
    used: dict[str, str] = field(default_factory=dict)  #: path -> "--param" / "$NAME"
    missing: list[str] = field(default_factory=list)

    def value(self, path: str, marker: dict[str, Any]) -> Any:
        if path in self.given:
            self.used[path] = "--param"
            return _typed_value(marker, self.given[path])
        name = env_name(path)
        if name in self.environ:
            self.used[path] = f"${name}"
            return _typed_value(marker, self.environ[name])
        if path not in self.missing:
            self.missing.append(path)
        return marker

    def fill(self, typed: Any, path: str) -> Any:
        """``typed`` with every redaction marker under ``path`` replaced by its supplied value."""
        if is_redacted(typed):
            return self.value(path, typed)
        if isinstance(typed, list):
            return [self.fill(v, f"{path}.{i}") for i, v in enumerate(typed)]
        if isinstance(typed, dict):
            tag = typed.get(_TAG)
            if tag is None:
                return {k: self.fill(v, f"{path}.{k}") for k, v in typed.items()}
            if tag in ("tuple", "set", "frozenset"):
                return {**typed, "v": [self.fill(v, f"{path}.{i}") for i, v in enumerate(typed.get("v", []))]}
            if tag == "dict":
                return {**typed, "items": [[k, self.fill(v, f"{path}.{k}")] for k, v in typed.get("items", [])]}
            if tag == "object":  # a dataclass, attrs class, pydantic model (fields) or named tuple (items)
                fields = typed.get("v")
                if isinstance(fields, list):
                    return {**typed, "v": [self.fill(v, f"{path}.{i}") for i, v in enumerate(fields)]}
                if isinstance(fields, dict):
                    return {**typed, "v": {k: self.fill(v, f"{path}.{k}") for k, v in fields.items()}}
        return typed

    def fill_mapping(self, params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        return {k: self.fill(v, f"{prefix}{k}") for k, v in params.items()}

    def fill_argv(self, argv: list[str]) -> list[str]:
        """A recorded argv entry holding ``[REDACTED]`` is replaced whole by ``argv.N``'s value."""
        out = []
        for i, arg in enumerate(argv):
            if REDACTED in arg:
                path = f"argv.{i}"
                got = self.value(path, {_TAG: "redacted", "type": "str"})
                out.append(got if isinstance(got, str) else arg)
            else:
                out.append(arg)
        return out

    def lines(self) -> list[str]:
        """One line per secret for the plan: where it comes from, or how to give it."""
        out = [f"{p}: from {src}" for p, src in self.used.items()]
        out += [f"{p}: not given (--param {p}=VALUE or ${env_name(p)})" for p in self.missing]
        return out

    def error(self, where: str) -> errors.SecretParameterMissing | None:
        if not self.missing:
            return None
        return errors.SecretParameterMissing.for_paths(where, self.missing, [env_name(p) for p in self.missing])


def supplied(given: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None) -> Supplied:
    return Supplied(dict(given or {}), os.environ if environ is None else environ)


__all__ = ["PARAM_ENV_PREFIX", "Supplied", "env_name", "parse_params", "supplied"]
