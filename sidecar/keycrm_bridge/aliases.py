"""SKUs KeyCRM did not rename: our SKU ↔ the offer (id, and the SKU KeyCRM still holds).

A SKU renamed in WooCommerce is sent to KeyCRM as ``PUT /offers {id, sku}``, but KeyCRM's spec only
says that ``id`` or ``sku`` identifies the offer: it does not promise a rename. So the push reads
the offer back. When KeyCRM kept the old SKU, the rename stays an open item for the owner ("rename
`OLD` to `NEW` in KeyCRM", listed with the unmatched SKUs) and an alias lets stock keep flowing by
offer id meanwhile: reads of the new SKU go by offer id, rows KeyCRM sends under the old SKU count
for the new one, and writes address the offer by id. Once KeyCRM shows the new SKU, the alias goes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from .store import Store

log = logging.getLogger("keycrm_bridge.aliases")


def rename_note(old: str, new: str) -> str:
    return f"rename `{old}` to `{new}` in KeyCRM: it kept the old SKU (stock goes to the offer by its id meanwhile)"


@dataclass(frozen=True)
class Alias:
    sku: str            # ours (WooCommerce's current SKU)
    keycrm_sku: str     # what KeyCRM still calls the offer
    offer_id: int


class Aliases:
    def __init__(self, store: Store) -> None:
        self.store = store

    def all(self) -> dict[str, Alias]:
        return {r[0]: Alias(r[0], r[1], int(r[2])) for r in self.store.conn.execute(
            "SELECT sku, keycrm_sku, offer_id FROM sku_aliases")}

    def add(self, sku: str, keycrm_sku: str, offer_id: int, now: float) -> None:
        self.store.conn.execute(
            "INSERT INTO sku_aliases (sku, keycrm_sku, offer_id, since) VALUES (?, ?, ?, ?) ON CONFLICT (sku)"
            " DO UPDATE SET keycrm_sku = excluded.keycrm_sku, offer_id = excluded.offer_id", (sku, keycrm_sku,
                                                                                          offer_id, now))
        self.store.note_unmatched(sku, "keycrm", rename_note(keycrm_sku, sku), None, now)
        log.warning("KeyCRM did not rename the offer; kept as an open item",
                    extra={"sku": sku, "keycrm_sku": keycrm_sku, "offer_id": offer_id})

    def confirmed(self, skus: Iterable[str]) -> None:
        """KeyCRM now shows these SKUs on their offers: the renames are done."""
        for sku in skus:
            self.store.conn.execute("DELETE FROM sku_aliases WHERE sku = ?", (sku,))
            self.store.conn.execute("DELETE FROM unmatched WHERE sku = ? AND side = 'keycrm' AND reason LIKE"
                                    " 'rename %'", (sku,))
            log.info("KeyCRM shows the renamed SKU now", extra={"sku": sku})

    def ours(self, items: Iterable[dict], *, confirm: bool = True) -> list[dict]:
        """KeyCRM rows (``{"id", "sku", …}``) under our SKUs; a row read from KeyCRM that is already under
        ours confirms its rename (``confirm``; never for an unsigned webhook row)."""
        aliases = self.all()
        if not aliases:
            return list(items)
        by_offer = {a.offer_id: a for a in aliases.values()}
        out, done = [], []
        for item in items:
            a = by_offer.get(item.get("id") or item.get("offer_id") or -1)
            if a is not None:
                if confirm and item.get("sku") == a.sku:
                    done.append(a.sku)
                item = {**item, "sku": a.sku}
            out.append(item)
        if done:
            self.confirmed(done)
        return out
