"""SKU health (DESIGN.md S9): which SKUs cannot be matched one to one, and which look like each other.

Pure functions: the resync planner calls them on each catalogue row it stores, and on each group of
rows that share a SKU. Nothing here merges anything: a lookalike is reported as a *probable* match
for a person to fix, because "A1" and "А1" (Cyrillic А) may also be two real products.
"""

from __future__ import annotations

from dataclasses import dataclass

# Cyrillic letters that a Ukrainian or Russian keyboard types where a Latin one was meant (and that
# look the same in most fonts), mapped to that Latin letter. Upper and lower case are both listed so
# that the key below is also the answer to "which letters were mixed up".
CYRILLIC_TO_LATIN = {
    "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "І": "I", "К": "K", "М": "M", "О": "O",
    "Р": "P", "Т": "T", "Х": "X", "а": "a", "с": "c", "е": "e", "і": "i", "о": "o", "р": "p",
    "х": "x", "у": "y",
}
_FOLD = str.maketrans(CYRILLIC_TO_LATIN)

# Problem codes, as they appear in the plan's ``problems`` column (JSON list, CSV "a;b").
ONLY_IN_WOOCOMMERCE = "only_in_woocommerce"
ONLY_IN_KEYCRM = "only_in_keycrm"
EMPTY_SKU = "empty_sku"
DUPLICATE_IN_WOOCOMMERCE = "duplicate_in_woocommerce"
DUPLICATE_IN_KEYCRM = "duplicate_in_keycrm"
PARENT_AND_VARIATION = "parent_and_variation_share_sku"
VARIABLE_PARENT = "matches_a_variable_parent"
STOCK_NOT_MANAGED = "stock_not_managed"
LOOKALIKE = "lookalike"
ORDER_IN_FLIGHT = "order_in_flight"

PROBLEMS = (ONLY_IN_WOOCOMMERCE, ONLY_IN_KEYCRM, EMPTY_SKU, DUPLICATE_IN_WOOCOMMERCE, DUPLICATE_IN_KEYCRM,
            PARENT_AND_VARIATION, VARIABLE_PARENT, STOCK_NOT_MANAGED, LOOKALIKE, ORDER_IN_FLIGHT)

DESCRIPTIONS = {
    ONLY_IN_WOOCOMMERCE: "exists in WooCommerce only",
    ONLY_IN_KEYCRM: "exists in KeyCRM only",
    EMPTY_SKU: "has no SKU, so it cannot be matched",
    DUPLICATE_IN_WOOCOMMERCE: "several WooCommerce products or variations have this SKU",
    DUPLICATE_IN_KEYCRM: "several KeyCRM offers have this SKU",
    PARENT_AND_VARIATION: "a variable product and one of the variations share this SKU",
    VARIABLE_PARENT: "the KeyCRM offer matches a variable product, whose variations carry the stock",
    STOCK_NOT_MANAGED: "stock is not managed for this product in WooCommerce",
    LOOKALIKE: "differs from another SKU only by case, spaces or Latin/Cyrillic lookalike letters",
    ORDER_IN_FLIGHT: "a site order KeyCRM does not show yet holds this SKU; the live sync settles it",
}


def sku_key(sku: str) -> str:
    """What two SKUs that a person would read as the same have in common.

    Trims surrounding whitespace, maps Cyrillic lookalikes to Latin and folds case. Two different
    SKUs with one key are probable matches.
    """
    return sku.strip().translate(_FOLD).casefold()


def lookalike_reason(sku: str, other: str) -> str:
    """Words for why ``sku`` and ``other`` look alike (for the report's ``probable_match`` column)."""
    reasons = []
    if sku != sku.strip() or other != other.strip():
        reasons.append("surrounding spaces")
    a, b = sku.strip(), other.strip()
    if (a.translate(_FOLD) != a or b.translate(_FOLD) != b) and a.casefold() != b.casefold():
        reasons.append("Latin/Cyrillic letters")
    if a.translate(_FOLD) != b.translate(_FOLD):
        reasons.append("case")
    return ", ".join(reasons) or "lookalike"


@dataclass(frozen=True)
class Group:
    """Everything both catalogues hold under one exact SKU."""

    sku: str
    woo_items: int          # products and variations (not variable parents) with this SKU
    woo_parents: int        # variable parents with this SKU
    woo_variations: int     # of woo_items, how many are variations
    woo_managed: bool       # the single item manages its stock
    kc_offers: int


def problems_of(g: Group) -> list[str]:
    """The problems of one SKU group; an empty list means it is matched one to one."""
    out: list[str] = []
    if not g.sku.strip():
        return [EMPTY_SKU]
    if g.woo_parents and g.woo_variations:
        out.append(PARENT_AND_VARIATION)
    elif g.woo_items > 1:
        out.append(DUPLICATE_IN_WOOCOMMERCE)
    if g.kc_offers > 1:
        out.append(DUPLICATE_IN_KEYCRM)
    if g.kc_offers and not g.woo_items:
        out.append(VARIABLE_PARENT if g.woo_parents else ONLY_IN_KEYCRM)
    if g.woo_items and not g.kc_offers:
        out.append(ONLY_IN_WOOCOMMERCE)
    if g.woo_items == 1 and g.kc_offers == 1 and not g.woo_managed:
        out.append(STOCK_NOT_MANAGED)
    return out
