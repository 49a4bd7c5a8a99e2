"""The flows of the real-shop suite. Each takes the shop and returns what it saw, or raises.

The hook sequences real WooCommerce 11.0 fires, which the plugin relies on (and the stand-in in
wp-plugin/tests/standin reproduces), are named in each flow's docstring; each flow asserts the event the
plugin built from them, so a change in WooCommerce's hooks fails a named flow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import rig
from shop import Sidecar, outbox_count, wait_for

STOCK = 20
# A sale reaches the sidecar through the plugin's flush request, moments after the checkout. A retry comes
# 10 s or more later (back-off, WP-Cron, Action Scheduler's once-a-minute runner), so a bound well under 10 s
# tells the two apart and still leaves a loaded machine room.
SALE_DELIVERY_S = 5.0


@dataclass
class Shop:
    wc: Any            # rigclient.WC over http (OAuth 1.0a), as the sidecar calls it
    admin: Any         # rigclient.WPAdmin, logged in as the shop owner
    sidecar: Sidecar
    prefix: str
    ids: dict[str, int] = field(default_factory=dict)   # SKU -> product or variation id
    parent: dict[str, int] = field(default_factory=dict)  # variation SKU -> parent id
    orders: list[int] = field(default_factory=list)

    def woo_stock(self, sku: str) -> float:
        pid = self.ids[sku]
        endpoint = f"products/{self.parent[sku]}/variations/{pid}" if sku in self.parent else f"products/{pid}"
        return float(self.wc.get(endpoint)["stock_quantity"])

    def sku(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def scenario(self, name: str) -> str:
        """The X-Rig-Scenario of this run's requests for one flow (the rig logs their hooks under it)."""
        return f"{self.prefix}-{name}"


def catalogue(prefix: str) -> tuple[list[dict[str, Any]], list[tuple[str, list[str]]]]:
    simple = [{"name": f"Real shop {prefix} {n}", "sku": f"{prefix}-{n}", "type": "simple", "regular_price": "12.50",
               "manage_stock": True, "stock_quantity": STOCK}
              for n in ("REST", "SCREEN", "QUICK", "CSV", "HPOS", "LEGACY", "CANCEL", "REFUND", "TRASH", "RENAME", "OUT1",
                        "OUT2")]
    variable = [(f"{prefix}-VAR", [f"{prefix}-VAR-RED", f"{prefix}-VAR-BLUE"])]
    return simple, variable


def create_catalogue(shop: Shop) -> str:
    """products/batch (create) → woocommerce_new_product, then variations: woocommerce_new_product_variation."""
    simple, variable = catalogue(shop.prefix)
    made = shop.wc.post("products/batch", {"create": simple})["create"]
    for p in made:
        assert "id" in p, p
        shop.ids[p["sku"]] = p["id"]
    for parent_sku, skus in variable:
        parent = shop.wc.post("products", {"name": f"Real shop {parent_sku}", "sku": parent_sku, "type": "variable",
                                           "attributes": [{"name": "Colour", "visible": True, "variation": True,
                                                           "options": [s.rsplit("-", 1)[1] for s in skus]}]})
        shop.ids[parent_sku] = parent["id"]
        batch = [{"sku": s, "regular_price": "30.00", "manage_stock": True, "stock_quantity": STOCK,
                  "attributes": [{"name": "Colour", "option": s.rsplit("-", 1)[1]}]} for s in skus]
        for v in shop.wc.post(f"products/{parent['id']}/variations/batch", {"create": batch})["create"]:
            assert "id" in v, v
            shop.ids[v["sku"]], shop.parent[v["sku"]] = v["id"], parent["id"]
    for sku in shop.ids:
        if sku != variable[0][0]:
            shop.sidecar.wait_event(sku, "its first stock.set", lambda e: e["type"] == "stock.set")
    return f"{len(shop.ids)} products and variations created over wc/v3; the plugin reported each"


def _set_and_follow(shop: Shop, sku: str, value: int, cause: str) -> str:
    shop.sidecar.wait_event(sku, f"stock.set {value} cause {cause}",
                            lambda e: e["type"] == "stock.set" and e["stock_quantity"] == value and e["cause"] == cause)
    shop.sidecar.wait_kc(sku, value)
    assert shop.woo_stock(sku) == value
    return f"{sku}: WooCommerce {value}, event cause {cause}, KeyCRM sellable {value}"


def rest_edit(shop: Shop) -> str:
    """PUT wc/v3/products/{id}: woocommerce_product_set_stock from the REST controller (cause rest)."""
    sku = shop.sku("REST")
    shop.wc.put(f"products/{shop.ids[sku]}", {"stock_quantity": 17}, scenario=shop.scenario("rest"))
    seen = _set_and_follow(shop, sku, 17, "rest")
    return seen + "; hooks " + rig.assert_hooks(shop.scenario("rest"), [
        "woocommerce_product_set_stock", "woocommerce_update_product"])


def product_screen(shop: Shop) -> str:
    """post.php save: WC_Meta_Box_Product_Data::save → woocommerce_product_set_stock (cause manual)."""
    sku = shop.sku("SCREEN")
    r = shop.admin.save_product_form(shop.ids[sku], {"_stock": "13"}, scenario=shop.scenario("screen"))
    assert r.status_code in (302, 303), r.status_code
    seen = _set_and_follow(shop, sku, 13, "manual")
    return seen + "; hooks " + rig.assert_hooks(shop.scenario("screen"), [
        "woocommerce_product_set_stock", "woocommerce_update_product"])


def quick_edit(shop: Shop) -> str:
    """admin-ajax inline-save: WC_Admin_Post_Types::quick_edit_save → woocommerce_product_set_stock."""
    sku = shop.sku("QUICK")
    r = shop.admin.quick_edit(shop.ids[sku], sku, {"_stock": "11"}, scenario=shop.scenario("quick"))
    assert r.status_code == 200, r.status_code
    seen = _set_and_follow(shop, sku, 11, "manual")
    return seen + "; hooks " + rig.assert_hooks(shop.scenario("quick"), [
        "woocommerce_product_set_stock", "woocommerce_update_product"])


def csv_import(shop: Shop) -> str:
    """Products → Import (update existing): woocommerce_product_import_before_process_item, then the
    product's save → woocommerce_product_set_stock (cause import)."""
    from owner import csv_import as run_import

    sku = shop.sku("CSV")
    updated = run_import(shop.admin, f"SKU,Stock\n{sku},9\n", scenario=shop.scenario("csv"))
    assert updated == 1, updated
    seen = _set_and_follow(shop, sku, 9, "import")
    return seen + "; hooks " + rig.assert_hooks(shop.scenario("csv"), [
        "woocommerce_product_import_before_process_item", "woocommerce_product_set_stock", "woocommerce_update_product"])


def variations(shop: Shop) -> str:
    """A variation by REST (woocommerce_variation_set_stock) and by the product screen's variations panel
    (admin-ajax woocommerce_save_variations → woocommerce_variation_set_stock)."""
    red, blue = shop.sku("VAR-RED"), shop.sku("VAR-BLUE")
    shop.wc.put(f"products/{shop.parent[red]}/variations/{shop.ids[red]}", {"stock_quantity": 8})
    first = _set_and_follow(shop, red, 8, "rest")
    r = shop.admin.save_variation_form(shop.parent[blue], shop.ids[blue], {"variable_stock": "6"},
                                       scenario=shop.scenario("variation"))
    assert r.status_code == 200, r.status_code
    event = shop.sidecar.wait_event(blue, "the variation's stock.set", lambda e: e["type"] == "stock.set"
                                    and e["stock_quantity"] == 6)
    assert event["parent_id"] == shop.parent[blue], event
    shop.sidecar.wait_kc(blue, 6)
    hooks = rig.assert_hooks(shop.scenario("variation"), [
        "woocommerce_variation_set_stock", "woocommerce_update_product_variation", "woocommerce_save_product_variation"])
    return f"{first}; {blue} (parent {event['parent_id']}) by the variations panel: 6, cause {event['cause']}; hooks {hooks}"


def checkout(shop: Shop, sku: str, quantity: int = 2) -> tuple[int, dict[str, Any]]:
    """A shopper's Store API checkout (COD). Order placed → wc_reduce_stock_levels →
    woocommerce_product_set_stock with the order in context (cause order, order_id, quantity_delta)."""
    from rigclient import StoreAPI

    since = shop.sidecar.sim.control.last_seq()
    before = shop.woo_stock(sku)
    store = StoreAPI()
    store.cart()
    store.add_item(shop.ids[sku], quantity)
    order = store.checkout(scenario=shop.scenario(f"checkout-{sku}"))
    order_id = int(order["order_id"])
    shop.orders.append(order_id)
    assert shop.woo_stock(sku) == before - quantity
    event = shop.sidecar.wait_event(sku, "the sale's stock.set", lambda e: e["type"] == "stock.set"
                                    and e.get("order_id") == order_id)
    assert event["cause"] == "order" and event["quantity_delta"] == -quantity, event
    # From the stock hook during the checkout to the sidecar's acceptance of the batch (one clock).
    lag = event["received_at"] - event["occurred_at"]
    assert lag <= SALE_DELIVERY_S, (f"the sale reached the sidecar {lag:.1f} s after the checkout (the sidecar was up; "
                                    f"at most {SALE_DELIVERY_S:g} s): it went by a retry, not by the flush request")
    hooks = rig.assert_hooks(shop.scenario(f"checkout-{sku}"), [
        "woocommerce_product_set_stock", "woocommerce_reduce_order_item_stock", "woocommerce_reduce_order_stock"])
    return order_id, {"since": since, "before": before, "event": event, "hooks": hooks, "lag": lag}


def _sold_not_pushed(shop: Shop, sku: str, order_id: int, seen: dict[str, Any], quantity: int) -> str:
    # KeyCRM's own order integration brings the order there and reserves it; the bridge must not also
    # lower KeyCRM's quantity (that would count the sale twice).
    shop.sidecar.sim.control.create_order({sku: quantity}, source_uuid=str(order_id))
    shop.sidecar.wait_kc(sku, seen["before"] - quantity)
    lowered = [r for r in shop.sidecar.kc_stock_writes(sku, seen["since"])]
    assert lowered == [], f"the bridge wrote KeyCRM stock for a sale: {lowered}"
    return (f"order {order_id}: WooCommerce -{quantity}, event cause order at the sidecar {seen['lag']:.2f} s after "
            f"the sale; no KeyCRM stock write; both {seen['before'] - quantity}; hooks {seen['hooks']}")


def checkout_hpos(shop: Shop) -> str:
    assert rig.set_order_storage(True) == "hpos"
    sku = shop.sku("HPOS")
    order_id, seen = checkout(shop, sku)
    return "HPOS: " + _sold_not_pushed(shop, sku, order_id, seen, 2)


def checkout_legacy(shop: Shop) -> str:
    assert rig.set_order_storage(False) == "posts"
    try:
        sku = shop.sku("LEGACY")
        order_id, seen = checkout(shop, sku)
        return "posts storage: " + _sold_not_pushed(shop, sku, order_id, seen, 2)
    finally:
        rig.set_order_storage(True)


def cancel_restock(shop: Shop) -> str:
    """Order → cancelled: woocommerce_order_status_cancelled → wc_maybe_increase_stock_levels →
    woocommerce_product_set_stock (cause order_restore, +quantity)."""
    sku = shop.sku("CANCEL")
    order_id, seen = checkout(shop, sku, 3)
    shop.wc.put(f"orders/{order_id}", {"status": "cancelled"}, scenario=shop.scenario("cancel"))
    event = shop.sidecar.wait_event(sku, "the restore", lambda e: e["type"] == "stock.set"
                                    and e["cause"] == "order_restore" and e.get("order_id") == order_id)
    assert event["quantity_delta"] == 3 and shop.woo_stock(sku) == seen["before"], event
    assert shop.sidecar.kc_stock_writes(sku, seen["since"]) == []
    hooks = rig.assert_hooks(shop.scenario("cancel"), [
        "woocommerce_order_status_cancelled", "woocommerce_product_set_stock", "woocommerce_restore_order_item_stock"])
    return f"order {order_id} cancelled: WooCommerce back to {seen['before']}, event order_restore +3, no KeyCRM write; hooks {hooks}"


def refund_restock(shop: Shop) -> str:
    """POST orders/{id}/refunds with restock_items: wc_restock_refunded_items → woocommerce_product_set_stock
    with the refund's order (cause order_restore)."""
    sku = shop.sku("REFUND")
    order_id, seen = checkout(shop, sku, 2)
    order = shop.wc.get(f"orders/{order_id}")
    item = order["line_items"][0]
    shop.wc.post(f"orders/{order_id}/refunds", {"amount": "12.50", "api_refund": False, "line_items": [
        {"id": item["id"], "quantity": 1, "refund_total": 12.5, "refund_tax": []}], "restock_items": True},
        scenario=shop.scenario("refund"))
    event = shop.sidecar.wait_event(sku, "the refund's restore", lambda e: e["type"] == "stock.set"
                                    and e["cause"] == "order_restore")
    assert event["quantity_delta"] == 1 and shop.woo_stock(sku) == seen["before"] - 1, event
    assert shop.sidecar.kc_stock_writes(sku, seen["since"]) == []
    hooks = rig.assert_hooks(shop.scenario("refund"), ["woocommerce_product_set_stock", "woocommerce_restock_refunded_item"])
    return f"order {order_id}: 1 of 2 refunded with restock: WooCommerce {seen['before'] - 1}, event order_restore +1; hooks {hooks}"


def trash_delete(shop: Shop) -> str:
    """wp-admin "Move to Trash": core's trashed_post only (WooCommerce fires no product hook of its own) →
    product.upsert with status trash; "Delete Permanently": before_delete_post → product.deleted."""
    sku = shop.sku("TRASH")
    pid = shop.ids[sku]
    shop.admin.follow(shop.admin.trash_link(pid), scenario=shop.scenario("trash"))
    trashed = shop.sidecar.wait_event(sku, "the trash", lambda e: e["type"] == "product.upsert"
                                      and e.get("product", {}).get("status") == "trash")
    shop.admin.follow(shop.admin.delete_permanently_link(pid), scenario=shop.scenario("delete"))
    deleted = shop.sidecar.wait_event(sku, "the delete", lambda e: e["type"] == "product.deleted")
    assert shop.wc.get(f"products/{pid}", expect_ok=False).get("code") == "woocommerce_rest_product_invalid_id"
    trash_hooks = rig.assert_hooks(shop.scenario("trash"), ["wp_trash_post", "trashed_post"])
    delete_hooks = rig.assert_hooks(shop.scenario("delete"), ["before_delete_post", "deleted_post"])
    return (f"trashed: product.upsert status trash (cause {trashed['cause']}), hooks {trash_hooks}; deleted: "
            f"{deleted['type']}, hooks {delete_hooks}")


def sku_rename(shop: Shop) -> str:
    """PUT sku: woocommerce_update_product with the old SKU in the product's changes (old_sku in the event)."""
    old = shop.sku("RENAME")
    new = old + "-NEW"
    shop.wc.put(f"products/{shop.ids[old]}", {"sku": new}, scenario=shop.scenario("rename"))
    event = shop.sidecar.wait_event(new, "the rename", lambda e: e["type"] == "product.upsert"
                                    and e.get("old_sku") == old)
    shop.wc.put(f"products/{shop.ids[old]}", {"stock_quantity": 5})
    shop.sidecar.wait_event(new, "stock under the new SKU", lambda e: e["type"] == "stock.set"
                            and e["stock_quantity"] == 5)
    # KeyCRM's API promises no SKU rename through PUT /offers (its simulator keeps the old SKU, as KeyCRM
    # may): the stock still reaches the same offer, by its id, under the SKU KeyCRM shows.
    shop.sidecar.wait_kc(old, 5)
    hooks = rig.assert_hooks(shop.scenario("rename"), ["woocommerce_update_product"])
    return (f"{old} → {new}: event old_sku {event['old_sku']}; a stock edit under the new SKU reached the same "
            f"KeyCRM offer by id (5, KeyCRM still shows {old}); hooks {hooks}")


def outage(shop: Shop, minutes: float = 2.0) -> str:
    """The sidecar's events API stopped while shoppers buy and the owner edits; everything waits in the
    plugin's outbox (Action Scheduler retries) and drains after the sidecar is back."""
    a, b = shop.sku("OUT1"), shop.sku("OUT2")
    shop.sidecar.stop_web()
    t_down = time.monotonic()
    sold = []
    while time.monotonic() - t_down < minutes * 60:
        sold.append(checkout_while_down(shop, a))
        shop.wc.put(f"products/{shop.ids[b]}", {"stock_quantity": int(shop.woo_stock(b)) - 1})
        time.sleep(15)
    queued = outbox_count()
    assert queued >= 2 * len(sold), f"outbox holds {queued}"
    shop.sidecar.start_web()
    back = time.monotonic()
    # Shoppers keep visiting, which is what runs WP-Cron and Action Scheduler on a real shop.
    def drained() -> bool:
        shop.admin.s.get(shop.admin.base + "/", timeout=60)
        return outbox_count() == 0
    wait_for(drained, timeout=300, interval=2, what="the outbox to drain")
    took = time.monotonic() - back
    for order_id in sold:
        shop.sidecar.wait_event(a, f"order {order_id}", lambda e, o=order_id: e.get("order_id") == o)
    shop.sidecar.wait_kc(b, shop.woo_stock(b))
    assert took <= 40, f"the outbox drained {took:.0f} s after the sidecar was back (documented back-off: 40 s)"
    return (f"down {time.monotonic() - t_down - took:.0f} s, {len(sold)} orders + {len(sold)} edits kept ({queued} "
            f"outbox rows); drained {took:.0f} s after the sidecar was back; every event arrived")


def checkout_while_down(shop: Shop, sku: str) -> int:
    from rigclient import StoreAPI

    before = shop.woo_stock(sku)
    t0 = time.monotonic()
    store = StoreAPI()
    store.cart()
    store.add_item(shop.ids[sku], 1)
    order_id = int(store.checkout()["order_id"])
    assert time.monotonic() - t0 < 30, "checkout waited for the sidecar"
    assert shop.woo_stock(sku) == before - 1
    return order_id
