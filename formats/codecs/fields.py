"""Field inference: the mapping paths (DESIGN §2) found in sample record trees.

Shared by every codec's `infer_fields`; it only walks trees, it knows no format.
"""
from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any

# A sample is a hint for the mapping editor: a few documents show the shape.
SAMPLE_DOCUMENTS = 20


def field_paths(documents: Iterable[Any]) -> list[str]:
    """Paths of every leaf in the first documents, in first-seen order.

    A list becomes `name[*]` (a top-level list is a series of records, so its
    elements' fields are listed without a prefix).
    """
    found: dict[str, None] = {}
    for document in islice(documents, SAMPLE_DOCUMENTS):
        if isinstance(document, list):
            for element in document:
                _walk(element, "", found)
        else:
            _walk(document, "", found)
    return list(found)


def _walk(value: Any, prefix: str, found: dict[str, None]) -> None:
    if isinstance(value, dict):
        if not value and prefix:
            found[prefix] = None
        for key, child in value.items():
            _walk(child, f"{prefix}.{key}" if prefix else str(key), found)
    elif isinstance(value, list):
        inner = f"{prefix}[*]"
        if not value:
            found[inner] = None
        for element in value:
            _walk(element, inner, found)
    elif prefix:
        found[prefix] = None
