"""`doctor`'s ERP checks. MoySklad: a live, authenticated request to the MoySklad simulator over HTTP
(a wrong token is named, an unknown warehouse in the map is named, an unreachable address is said).
1C calls the bridge, so there is nothing to call: its credentials and the address to give 1C."""

from __future__ import annotations

import pytest

from keycrm_bridge import doctor
from keycrm_bridge.clock import SystemClock
from keycrm_bridge.config import load_settings
from keycrm_bridge.erp.doctor_check import check_erp_connection
from keycrm_bridge.erp.doubles.moysklad_testing import MoySkladProcess
from keycrm_bridge.store import Store

from bridge import bridge_env, free_port


@pytest.fixture(scope="module")
def moysklad():
    ms = MoySkladProcess().start()
    ms.seed({"st-main": "Основной", "st-shop": "Магазин"}, [])
    yield ms
    ms.stop()


def settings_for(tmp_path, **env):
    return load_settings(bridge_env(tmp_path / "db.sqlite3", SYNC_MODE="erp", KEYCRM_READ_WAREHOUSE_IDS="1,2", **env))


def ms_env(ms, **kw):
    return {"ERP": "moysklad", "MOYSKLAD_TOKEN": ms.token, "MOYSKLAD_BASE_URL": ms.api_url,
            "ERP_WAREHOUSE_MAP": "st-main:1,st-shop:2", **kw}


def check(settings):
    return check_erp_connection(settings, SystemClock(), None, 3.0, "http://shop.example:8080")


def test_moysklad_token_accepted_and_the_map_names_its_warehouses(tmp_path, moysklad):
    found = check(settings_for(tmp_path, **ms_env(moysklad)))
    assert found["ok"] and not found.get("warning"), found
    assert "accepted MOYSKLAD_TOKEN" in found["message"] and "st-main (Основной)" in found["message"]
    # the call was a real, authenticated one: the simulator logged it
    assert any(r["path"].endswith("/entity/store") and r.get("status") != 429 for r in moysklad.log()["requests"])


def test_a_wrong_moysklad_token_is_named(tmp_path, moysklad):
    found = check(settings_for(tmp_path, **ms_env(moysklad, MOYSKLAD_TOKEN="not-the-token")))
    assert not found["ok"] and found["setting"] == "MOYSKLAD_TOKEN"
    assert "MoySklad refused MOYSKLAD_TOKEN (HTTP 401" in found["message"] and "Tokens" in found["fix"]


def test_a_map_naming_a_warehouse_moysklad_lacks_is_a_warning(tmp_path, moysklad):
    found = check(settings_for(tmp_path, **ms_env(moysklad, ERP_WAREHOUSE_MAP="st-main:1,st-gone:2")))
    assert found["ok"] and found["warning"] and found["setting"] == "ERP_WAREHOUSE_MAP"
    assert "no warehouse st-gone" in found["message"] and "st-shop (Магазин)" in found["message"]


def test_an_unreachable_moysklad_is_said_without_waiting_for_retries(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/api/remap/1.2"
    found = check(settings_for(tmp_path, ERP="moysklad", MOYSKLAD_TOKEN="t", MOYSKLAD_BASE_URL=url))
    assert not found["ok"] and "could not reach MoySklad" in found["message"] and url in found["message"]


def test_1c_has_nothing_to_call_doctor_says_what_to_enter_in_1c(tmp_path):
    s = settings_for(tmp_path, ERP="1c", ERP_1C_USER="exchange", ERP_1C_PASSWORD="Xk2-pq9-Lm4-Zr7",
                     ERP_WAREHOUSE_MAP="wh-main:1")
    found = check(s)
    assert found["ok"] and found["warning"], found            # no exchange yet
    assert "http://shop.example:8080/v1/erp/1c/exchange" in found["message"] and "'exchange'" in found["message"]
    store = Store(s.database_path)
    store.conn.execute("INSERT INTO erp_exchanges (cookie, created_at, last_at) VALUES ('c', 1, ?)",
                       (SystemClock().now() - 30,))
    found = check_erp_connection(s, SystemClock(), store, 3.0, "http://shop.example:8080")
    assert found["ok"] and not found.get("warning") and "last exchange" in found["message"]
    weak = check(settings_for(tmp_path, ERP="1c", ERP_1C_USER="exchange", ERP_1C_PASSWORD="exchange1234"))
    assert weak["warning"] and weak["setting"] == "ERP_1C_PASSWORD"


def test_doctor_runs_the_erp_check(tmp_path, moysklad):
    s = settings_for(tmp_path, **ms_env(moysklad, MOYSKLAD_TOKEN="not-the-token"))
    findings = {f.name: f for f in doctor.run_doctor(s, timeout_s=2.0)}
    erp = findings[doctor.ERP_CONNECTION]
    assert not erp.ok and erp.setting == "MOYSKLAD_TOKEN"
    assert "FAIL  ERP [MOYSKLAD_TOKEN]: MoySklad refused MOYSKLAD_TOKEN" in doctor.format_findings(list(findings.values()))
