"""The workflow's configuration (``config/config.yaml``): typed values from ``--config`` strings.

Snakemake parses a top-level ``--config key=value`` as an int, a float or a boolean when it can,
but reads a nested value (``--config 'benchmarks={tasks: [paper], num_fewshot: [0, 5]}'``) with
PyYAML's ``BaseLoader``, which types nothing: every scalar arrives as a string (``'0'``,
``'null'``, ``'true'``), and validation against ``config/schema.yaml`` then stops with
``'0' is not of type 'integer'``. :func:`typed_config` runs before the validation (the
Snakefile) and converts, field by field, every string whose field in the schema does not
accept a string into the type the schema names:

* ``integer``: an optionally signed run of digits (``'5'`` -> 5);
* ``number``: whatever ``float`` reads (an integer form stays an int);
* ``boolean``: ``true`` / ``false`` in any case;
* ``null``: ``null``, ``~`` or the empty string.

The schema is walked through ``properties`` (objects), ``items`` (arrays) and ``anyOf`` /
``oneOf`` (the union of the branches' types). A string that fits none of the field's types is
left alone, so that the validation names it. The rules therefore see ints, floats, booleans and
None, whichever way a value was given.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

_INTEGER = re.compile(r"[+-]?[0-9]+")
_NULLS = ("null", "~", "")
_BOOLS = {"true": True, "false": False}


def schema_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a (sub)schema accepts: its ``type`` (a name or a list) and its branches'."""
    declared = schema.get("type", [])
    types = {declared} if isinstance(declared, str) else set(declared)
    for key in ("anyOf", "oneOf"):
        for branch in schema.get(key, []):
            types |= schema_types(branch)
    return types


def typed_scalar(value: str, types: set[str]) -> Any:
    """``value`` (a string) as the first of ``types`` that reads it; unchanged if none does or
    if the field takes strings."""
    if "string" in types:
        return value
    if "null" in types and value.strip() in _NULLS:
        return None
    if "boolean" in types and value.strip().lower() in _BOOLS:
        return _BOOLS[value.strip().lower()]
    if types & {"integer", "number"} and _INTEGER.fullmatch(value.strip()):
        return int(value)
    if "number" in types:
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _branches(schema: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The subschemas under ``key`` (``properties`` merged, ``items``) of a schema and its branches."""
    found = [schema[key]] if isinstance(schema.get(key), dict) else []
    for union in ("anyOf", "oneOf"):
        for branch in schema.get(union, []):
            found += _branches(branch, key)
    return found


def typed_value(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` with every string of it converted as its field in ``schema`` says."""
    if isinstance(value, str):
        return typed_scalar(value, schema_types(schema))
    if isinstance(value, list):
        items = _branches(schema, "items")
        return [typed_value(v, items[0]) for v in value] if items else value
    if isinstance(value, dict):
        props: dict[str, Any] = {}
        for p in _branches(schema, "properties"):
            props.update(p)
        return {k: typed_value(v, props[k]) if k in props else v for k, v in value.items()}
    return value


def load_schema(path: str | Path) -> dict[str, Any]:
    """The workflow's JSON schema (``config/schema.yaml``)."""
    return yaml.safe_load(Path(path).read_text())


def typed_config(config: dict[str, Any], schema_file: str | Path) -> dict[str, Any]:
    """A copy of the workflow ``config`` with Snakemake's ``--config`` strings typed as
    ``schema_file`` says (see the module docstring); the Snakefile validates the result."""
    return typed_value(dict(config), load_schema(schema_file))
