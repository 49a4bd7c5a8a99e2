"""`keycrm-bridge doctor` against the real things over HTTP: the KeyCRM simulator, the WooCommerce peer,
a running gunicorn + worker. Six deliberately broken settings are each named, alone; a good setup passes.

The plugin's last request is what the events API records in store meta `last_plugin_request`: each
case sends a real batch to gunicorn, well or badly signed, and waits until the API has recorded it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from keycrm_bridge import doctor
from keycrm_bridge.clock import SystemClock
from keycrm_bridge.config import load_settings
from keycrm_bridge.simulator.testing import SimulatorProcess
from keycrm_bridge.store import Store
from keycrm_bridge.woo_peer.testing import WooPeerProcess
from keycrm_bridge.worker import WorkerLock

from bridge import SECRET, Web, Worker, bridge_env, event, free_port, post_events, wait_until

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("doctor")
    with SimulatorProcess(warehouses=(1,)) as sim, WooPeerProcess(seed=3, key="ck_good", secret_key="cs_good") as woo:
        sim.control.seed(offers=[{"sku": f"SKU-{i:06d}", "quantity": 10} for i in range(1, 4)])
        env = bridge_env(tmp / "data" / "db.sqlite3", sim.api_url, SYNC_MODE="two-way", WOO_URL=woo.url,
                         WOO_CONSUMER_KEY="ck_good", WOO_CONSUMER_SECRET="cs_good")
        web = Web(env, tmp / "web.log").start()
        env = web.env  # now with BIND: doctor looks for the events API there
        worker = Worker(env, tmp / "worker.log").start()
        wait_until(lambda: worker_holds_lock(env["DATABASE_PATH"]), what="the worker's lock")
        try:
            yield {"env": env, "web": web, "tmp": tmp}
        finally:
            worker.stop()
            web.stop()


def worker_holds_lock(db: str) -> bool:
    lock = WorkerLock(db)
    try:
        return not lock.acquire(SystemClock(), wait=False)
    finally:
        lock.release()


def plugin_request(stack, ok: bool) -> None:
    """A batch from "the plugin", signed with the sidecar's secret or another; the API records the outcome."""
    secret = SECRET if ok else "a-secret-the-sidecar-does-not-know"
    store = Store(stack["env"]["DATABASE_PATH"])

    def recorded() -> bool:
        r = post_events(stack["web"].url, [event("SKU-000001", 10, cause="sidecar")], secret=secret)
        assert r.status_code == (202 if ok else 401)
        last = store.get_meta("last_plugin_request") or {}
        return last.get("ok") == ok and last.get("at", 0) > time.time() - 60

    try:
        # gunicorn has two processes; each records its first outcome of a kind and then at most every 10 s.
        wait_until(recorded, timeout=30, interval=0.2, what=f"the API recording a {'good' if ok else 'bad'} request")
    finally:
        store.close()


def run(env: dict[str, str], capsys) -> tuple[dict[str, doctor.Finding], int, str]:
    settings = load_settings(env)
    started = time.monotonic()
    findings = doctor.run_doctor(settings, env)
    assert time.monotonic() - started < 10, "doctor must answer in seconds"
    assert len({f.name for f in findings}) == len(findings)
    code = doctor.main(settings)
    return {f.name: f for f in findings}, code, capsys.readouterr().out


def test_a_good_setup_passes(stack, capsys):
    plugin_request(stack, ok=True)
    found, code, out = run(stack["env"], capsys)
    assert [f for f in found.values() if not f.ok or f.warning] == []
    assert set(found) == {doctor.DATA_FOLDER, doctor.DATABASE, doctor.DISK, doctor.KEYCRM_CONNECTION, doctor.KEYCRM_KEY, doctor.KEYCRM_WAREHOUSES,
                          doctor.WOO_URL, doctor.WOO_KEYS, doctor.PLUGIN_SIGNATURE, doctor.EVENTS_API, doctor.WORKER,
                          doctor.DEMO_DEFAULTS}
    assert code == 0 and "everything checked is fine" in out


def _not_a_folder(stack) -> dict[str, str]:
    blocker = stack["tmp"] / "a-file"
    blocker.write_text("a file where the data folder should be")
    return {"DATABASE_PATH": str(blocker / "data" / "db.sqlite3")}


BROKEN = {
    "bad KeyCRM key": (lambda s: {"KEYCRM_API_KEY": "not-the-key"}, doctor.KEYCRM_KEY, "KEYCRM_API_KEY",
                       "KeyCRM rejected the API key"),
    "unknown warehouse": (lambda s: {"KEYCRM_WRITE_WAREHOUSE_ID": "7"}, doctor.KEYCRM_WAREHOUSES,
                          "KEYCRM_WRITE_WAREHOUSE_ID", "KeyCRM has no warehouse 7"),
    "wrong WooCommerce keys": (lambda s: {"WOO_CONSUMER_SECRET": "cs_wrong"}, doctor.WOO_KEYS, "WOO_CONSUMER_SECRET",
                               "WooCommerce rejected the consumer key or secret"),
    "unreachable WooCommerce": (lambda s: {"WOO_URL": f"http://127.0.0.1:{free_port()}"}, doctor.WOO_URL, "WOO_URL",
                                "could not reach WooCommerce"),
    "wrong shared secret": (lambda s: {}, doctor.PLUGIN_SIGNATURE, "BRIDGE_SHARED_SECRET",
                            "signed with a different secret"),
    "unwritable data folder": (_not_a_folder, doctor.DATA_FOLDER, "DATABASE_PATH", "cannot create the data folder"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_broken_setting_is_named_alone(stack, capsys, case):
    override, name, setting, words = BROKEN[case]
    if case != "unwritable data folder":  # that case has no database to record into
        plugin_request(stack, ok=case != "wrong shared secret")
    found, code, out = run({**stack["env"], **override(stack)}, capsys)
    failed = {n: f for n, f in found.items() if not f.ok}
    assert list(failed) == [name], {n: f.message for n, f in failed.items()}
    assert words in failed[name].message and setting in failed[name].setting and failed[name].fix
    assert code == 1
    assert f"FAIL  {name} [" in out and setting in out and "fix: " in out
    if case == "unwritable data folder":
        # KeyCRM is still checked (with a private budget) when the data folder is broken.
        assert found[doctor.KEYCRM_KEY].ok and not found[doctor.KEYCRM_KEY].warning
    if case in ("unreachable WooCommerce",):
        assert found[doctor.WOO_KEYS].warning  # not blamed: it could not be checked


def test_no_plugin_request_yet_is_a_warning_and_demo_values_are_flagged(tmp_path):
    env = {"BRIDGE_SHARED_SECRET": doctor.DEMO_VALUES["BRIDGE_SHARED_SECRET"], "KEYCRM_API_KEY": "k",
           "KEYCRM_WRITE_WAREHOUSE_ID": "1", "DATABASE_PATH": str(tmp_path / "db.sqlite3"), "SYNC_MODE": "woocommerce"}
    settings = load_settings(env)
    store = Store(settings.database_path)
    plugin = doctor.check_plugin(store, settings, time.time())
    assert plugin.ok and plugin.warning and plugin.message == "no request from the plugin yet"
    demo = doctor.check_demo_defaults(settings)
    assert demo.ok and demo.warning and demo.setting == "BRIDGE_SHARED_SECRET"
    woo = doctor.check_woocommerce(settings, None, 1.0)  # type: ignore[arg-type]  # not needed without WOO_URL
    assert [(f.name, f.ok, f.warning) for f in woo] == [(doctor.WOO_URL, True, True)]


def test_demo_values_are_the_ones_the_demo_env_file_holds():
    demo = {}
    for line in (ROOT / "docker" / "demo.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            demo[key] = value
    for key, value in doctor.DEMO_VALUES.items():
        assert demo[key] == value, key
