"""S9's SKU health rules as pure functions: lookalike keys and the problems of one SKU group."""

from keycrm_bridge import skuhealth
from keycrm_bridge.skuhealth import Group, lookalike_reason, problems_of, sku_key


def test_lookalikes_share_a_key_and_say_why():
    assert sku_key("А1") == sku_key("A1") == sku_key(" a1 ") == sku_key("а1")   # Cyrillic а/А, Latin a/A
    assert sku_key("ВЕНКОРХ-сехору") == sku_key("BEHKOPX-cexopy")
    assert sku_key("A1") != sku_key("A2") and sku_key("Ж1") != sku_key("X1")
    assert lookalike_reason("А1", "A1") == "Latin/Cyrillic letters"
    assert lookalike_reason("a1", "A1") == "case"
    assert lookalike_reason(" A1", "A1") == "surrounding spaces"


def test_every_cyrillic_lookalike_of_the_design_maps_to_latin():
    for cyr, lat in zip("АВСЕНІКМОРТХасеіорху", "ABCEHIKMOPTXaceiopxy", strict=True):
        assert skuhealth.CYRILLIC_TO_LATIN[cyr] == lat
        assert sku_key(f"Z-{cyr}") == sku_key(f"Z-{lat}")


def group(**kw):
    base = {"sku": "S", "woo_items": 1, "woo_parents": 0, "woo_variations": 0, "woo_managed": True, "kc_offers": 1}
    return Group(**{**base, **kw})


def test_problems_of_a_sku_group():
    assert problems_of(group()) == []
    assert problems_of(group(sku="  ")) == [skuhealth.EMPTY_SKU]
    assert problems_of(group(kc_offers=0)) == [skuhealth.ONLY_IN_WOOCOMMERCE]
    assert problems_of(group(woo_items=0)) == [skuhealth.ONLY_IN_KEYCRM]
    assert problems_of(group(woo_items=2)) == [skuhealth.DUPLICATE_IN_WOOCOMMERCE]
    assert problems_of(group(kc_offers=3)) == [skuhealth.DUPLICATE_IN_KEYCRM]
    assert problems_of(group(woo_parents=1, woo_variations=1)) == [skuhealth.PARENT_AND_VARIATION]
    assert problems_of(group(woo_items=0, woo_parents=1)) == [skuhealth.VARIABLE_PARENT]
    assert problems_of(group(woo_managed=False)) == [skuhealth.STOCK_NOT_MANAGED]
    assert problems_of(group(woo_items=2, kc_offers=0)) == [skuhealth.DUPLICATE_IN_WOOCOMMERCE,
                                                           skuhealth.ONLY_IN_WOOCOMMERCE]
    assert set(skuhealth.DESCRIPTIONS) == set(skuhealth.PROBLEMS)
