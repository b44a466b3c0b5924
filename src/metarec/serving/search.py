"""Item search by id or title, for the page's item picker."""

from __future__ import annotations

import re

from metarec.serving.models import ModelSnapshot

# Match tiers, best first; items that match none of them are left out.
EXACT_ID, EXACT_TITLE, WORD_PREFIX, PREFIX, WORD_INSIDE, INSIDE = range(6)


def search_items(snapshot: ModelSnapshot, query: str, limit: int) -> list[tuple[str, str]]:
    """Return up to ``limit`` (item id, title) pairs that match ``query``, best first.

    Matching is case-insensitive and ranks six tiers. First come the item whose id
    equals the query, titles equal to it, and titles that start with it as a whole
    word ("Star Wars" for "star"). Then come other titles that start with it
    ("Stargate"), titles with a word that starts with it, and titles that contain it.
    Within a tier items go by numeric id, then by id text. An empty query lists the
    first ``limit`` items of the catalog.
    """
    titles = snapshot.titles
    item_ids = snapshot.checkpoint.item_ids
    needle = query.strip().casefold()
    if not needle:
        return [(item_id, titles.get(item_id, "")) for item_id in item_ids[:limit]]
    whole_word = re.compile(rf"(?<!\w){re.escape(needle)}(?!\w)")
    word_start = re.compile(rf"(?<!\w){re.escape(needle)}")
    ranked: list[tuple[int, tuple[int, int, str], str, str]] = []
    for item_id in item_ids:
        title = titles.get(item_id, "")
        tier = _match_tier(item_id, title.casefold(), needle, whole_word, word_start)
        if tier is not None:
            ranked.append((tier, _id_order(item_id), item_id, title))
    ranked.sort()
    return [(item_id, title) for _tier, _order, item_id, title in ranked[:limit]]


def _match_tier(
    item_id: str, folded: str, needle: str, whole_word: re.Pattern[str], word_start: re.Pattern[str]
) -> int | None:
    if item_id.casefold() == needle:
        return EXACT_ID
    if folded == needle:
        return EXACT_TITLE
    if folded.startswith(needle):
        return WORD_PREFIX if whole_word.match(folded) else PREFIX
    if word_start.search(folded):
        return WORD_INSIDE
    if needle in folded:
        return INSIDE
    return None


def _id_order(item_id: str) -> tuple[int, int, str]:
    """Sort numeric ids by value ("9" before "10") and put other ids after them."""
    if item_id.isascii() and item_id.isdigit():
        return (0, int(item_id), item_id)
    return (1, 0, item_id)
