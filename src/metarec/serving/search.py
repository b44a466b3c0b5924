"""Item search by id or title, for the page's item picker."""

from __future__ import annotations

from metarec.serving.models import ModelSnapshot


def search_items(snapshot: ModelSnapshot, query: str, limit: int) -> list[tuple[str, str]]:
    """Return up to ``limit`` (item id, title) pairs that match ``query``.

    An exact id match comes first, then titles that start with the query, then
    titles that contain it (case-insensitive), each group in catalog order. An
    empty query lists the first ``limit`` items of the catalog.
    """
    titles = snapshot.titles
    item_ids = snapshot.checkpoint.item_ids
    needle = query.strip().casefold()
    if not needle:
        return [(item_id, titles.get(item_id, "")) for item_id in item_ids[:limit]]
    exact, prefix, inside = [], [], []
    for item_id in item_ids:
        title = titles.get(item_id, "")
        folded = title.casefold()
        if item_id.casefold() == needle:
            exact.append((item_id, title))
        elif folded.startswith(needle):
            prefix.append((item_id, title))
        elif needle in folded:
            inside.append((item_id, title))
    return (exact + prefix + inside)[:limit]
