"""Parsing of repeated `key=value` command-line options (`--option`, `--set`)."""

from __future__ import annotations

import json

from simulator.errors import InputError


def parse_key_values(items: list[str], flag: str) -> dict[str, object]:
    """`key=value` items -> dict; a value is JSON when it parses as JSON, else the text."""
    pairs: dict[str, object] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InputError(f"{flag} {item!r}: expected key=value")
        try:
            pairs[key] = json.loads(value)
        except (json.JSONDecodeError, RecursionError):  # not JSON: the text itself
            pairs[key] = value
    return pairs
