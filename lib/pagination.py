"""Pagination of every list endpoint: `limit`/`offset` (DESIGN §5), with a ceiling on `limit`.

Without one, `?limit=10000000` made one request read and serialise a whole table (the
messages table grows by the million). A larger limit is lowered to MAX_LIMIT; `next`
then leads on from there, as for any page.
"""
from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination

MAX_LIMIT = 1000


class CappedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT
