import re
from pathlib import Path

import pytest

from keycrm_bridge import cli
from keycrm_bridge.config import KEYS, ConfigError, load_settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
BASE = {"BRIDGE_SHARED_SECRET": "s" * 32, "KEYCRM_API_KEY": "k", "KEYCRM_WRITE_WAREHOUSE_ID": "1"}


def test_every_key_is_documented_and_every_documented_key_exists():
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", DOC.read_text(), re.M))
    assert documented == set(KEYS)


def test_every_key_in_the_source_is_listed():
    src = "".join(p.read_text() for p in (Path(cli.__file__).parent).glob("*.py"))
    read = set(re.findall(r'env\.get\("([A-Z0-9_]+)"', src)) | set(re.findall(r'_(?:int|float|url)\(env, "([A-Z0-9_]+)"', src))
    assert read <= set(KEYS), read - set(KEYS)


def test_defaults():
    s = load_settings(BASE)
    assert s.sync_mode == "keycrm" and s.rate_per_minute == 60 and s.read_warehouse_ids == (1,)
    assert not s.pushes_stock
    assert s.product_fields_from_woo == {"name", "description", "price", "weight", "dimensions"}


@pytest.mark.parametrize("key,value", [
    ("BRIDGE_SHARED_SECRET", ""),
    ("BRIDGE_SHARED_SECRET", "short"),
    ("KEYCRM_API_KEY", ""),
    ("KEYCRM_WRITE_WAREHOUSE_ID", ""),
    ("KEYCRM_WRITE_WAREHOUSE_ID", "abc"),
    ("KEYCRM_READ_WAREHOUSE_IDS", "2,3"),
    ("KEYCRM_READ_WAREHOUSE_IDS", "1,x"),
    ("KEYCRM_RATE_PER_MINUTE", "0"),
    ("SYNC_MODE", "both"),
    ("PRODUCT_FIELDS_FROM_WOO", "name,colour"),
    ("KEYCRM_BASE_URL", "ftp://x"),
    ("BIND", "nohostport"),
    ("LOG_LEVEL", "LOUD"),
    ("WOO_URL", "https://shop.example"),
    ("KEYCRM_WEBHOOK_TOKEN", "short"),
])
def test_bad_value_names_the_key(key, value):
    env = {**BASE, key: value}
    with pytest.raises(ConfigError) as exc:
        load_settings(env)
    if key == "WOO_URL":
        assert exc.value.key == "WOO_CONSUMER_KEY"
    else:
        assert exc.value.key == key


def test_cli_exits_2_with_one_line(monkeypatch, capsys):
    for k in KEYS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("BRIDGE_SHARED_SECRET", "s" * 32)
    monkeypatch.setenv("KEYCRM_API_KEY", "k")
    monkeypatch.setenv("KEYCRM_WRITE_WAREHOUSE_ID", "1")
    monkeypatch.setenv("SYNC_MODE", "sideways")
    with pytest.raises(SystemExit) as exc:
        cli.main(["worker"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SYNC_MODE" in err[0]


ERP_1C = {**BASE, "SYNC_MODE": "erp", "ERP": "1c", "ERP_1C_USER": "u", "ERP_1C_PASSWORD": "p" * 12,
          "KEYCRM_READ_WAREHOUSE_IDS": "1,2"}


def test_erp_settings():
    s = load_settings({**ERP_1C, "ERP_WAREHOUSE_MAP": "main:1, shop:1, *:2", "PRODUCT_FIELDS_FROM_ERP": "price",
                       "PRODUCT_FIELDS_FROM_WOO": "name"})
    assert s.erp is not None and s.erp.erp == "1c" and s.erp.product_fields == {"price"}
    assert s.erp.keycrm_warehouse("shop", 1) == 1 and s.erp.keycrm_warehouse("", 1) == 2
    assert s.erp.keycrm_warehouse("elsewhere", 1) is None
    assert load_settings({**ERP_1C}).erp.keycrm_warehouse("any", 1) == 1  # no map: all into the write warehouse


@pytest.mark.parametrize("extra,key", [
    ({"ERP": ""}, "ERP"),
    ({"ERP_1C_PASSWORD": "short"}, "ERP_1C_PASSWORD"),
    ({"ERP_WAREHOUSE_MAP": "main:3"}, "ERP_WAREHOUSE_MAP"),   # not a read warehouse
    ({"ERP_WAREHOUSE_MAP": "main"}, "ERP_WAREHOUSE_MAP"),
    ({"ERP_WAREHOUSE_MAP": "a:1,a:2"}, "ERP_WAREHOUSE_MAP"),
    ({"PRODUCT_FIELDS_FROM_ERP": "price"}, "PRODUCT_FIELDS_FROM_ERP"),  # WooCommerce owns price by default
    ({"ERP_ZERO_MISSING": "maybe"}, "ERP_ZERO_MISSING"),
    ({"ERP": "moysklad"}, "MOYSKLAD_TOKEN"),
])
def test_erp_settings_refused(extra, key):
    with pytest.raises(ConfigError) as err:
        load_settings({**ERP_1C, **extra})
    assert err.value.key == key
