"""S12 (and S9) over real HTTP: the KeyCRM simulator, the WooCommerce peer, gunicorn and the worker.

2,000 SKUs with 300 drifted, 20 on one side only and 5 duplicated: the dry run lists exactly those and
changes nothing; apply fixes every drift, writing each item once; a second dry run finds no drift;
a worker killed with SIGKILL in the middle resumes from its checkpoint without writing anything twice.
"""

import csv
import io
import sqlite3
import time

import pytest

from bridge import wait_until
from resync_stack import ResyncStack, S12Catalogue, by_sku, simple, with_action, with_problem


@pytest.fixture
def cat():
    return S12Catalogue()


@pytest.fixture
def stack(tmp_path, request):
    mode, kwargs = request.param if isinstance(request.param, tuple) else (request.param, {})
    s = ResyncStack(tmp_path, mode, **kwargs)
    yield s
    s.stop()


def assert_report_is_exactly_s12(items, cat, drift_action):
    assert len(items) == 2000
    assert with_action(items, drift_action) == set(cat.drifted)
    assert with_action(items, "update_woocommerce", "update_keycrm", "update_both", "create_keycrm") == set(cat.drifted)
    assert with_problem(items, "only_in_woocommerce") == set(cat.woo_only)
    assert with_problem(items, "only_in_keycrm") == set(cat.kc_only)
    assert with_problem(items, "duplicate_in_woocommerce") == set(cat.dup_woo)
    assert with_problem(items, "duplicate_in_keycrm") == set(cat.dup_kc)
    assert {i["sku"] for i in items if i["problems"]} == set(cat.woo_only + cat.kc_only + cat.duplicated)


@pytest.mark.parametrize("stack", ["keycrm"], indirect=True)
def test_s12_dry_run_reports_exactly_the_drift_then_apply_fixes_it(stack, cat):
    stack.start(cat.keycrm_offers(), cat.woo_products())
    dry = stack.start_resync(dry_run=True)
    again = stack.call("POST", "/v1/resync", {"dry_run": True})
    assert again.status_code == 409 and again.json()["id"] == dry, "one job at a time"
    st = stack.wait_job(dry)
    assert st["counts"]["actions"]["update_woocommerce"] == 300
    assert st["counts"]["problems"]["only_in_woocommerce"] == 10 and st["counts"]["problems"]["only_in_keycrm"] == 10
    items = stack.plan(dry)
    assert_report_is_exactly_s12(items, cat, "update_woocommerce")
    s = cat.drifted[0]
    assert by_sku(items)[s]["woo_stock"] == cat.sellable[s] + 3 and by_sku(items)[s]["woo_target"] == cat.sellable[s]
    # The dry run changed nothing anywhere.
    assert stack.woo_stock_writes() == {} and stack.keycrm_stock_writes() == {}
    assert stack.woo_stock(s) == cat.sellable[s] + 3
    # The same plan as CSV, signed like every GET (the plugin fetches it through its own signed call).
    r = stack.call("GET", f"/v1/resync/{dry}/plan.csv")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 2000 and {x["sku"] for x in rows if x["action"] == "update_woocommerce"} == set(cat.drifted)
    assert stack.call("GET", f"/v1/resync/{dry}/plan.csv").status_code == 200
    import requests
    assert requests.get(f"{stack.web.url}/v1/resync/{dry}/plan.csv", timeout=5).status_code == 401
    # S9: the same findings are listed in status.
    unmatched = {u["sku"]: u for u in stack.call("GET", "/v1/status").json()["unmatched_skus"]}
    assert set(cat.woo_only + cat.kc_only + cat.duplicated) <= set(unmatched)
    assert unmatched["W-01"]["side"] == "woocommerce" and unmatched["K-01"]["side"] == "keycrm"

    applied = stack.wait_job(stack.start_resync(dry_run=False))
    assert applied["counts"]["writes"] == {"woocommerce_done": 300} and applied["errors"] == 0
    assert all(stack.woo_stock(s) == cat.sellable[s] for s in cat.drifted[::15])
    writes = stack.woo_stock_writes()
    assert len(writes) == 300 and max(writes.values()) == 1, "each drifted product written exactly once"
    assert stack.keycrm_stock_writes() == {}, "keycrm mode never writes KeyCRM"
    # The live sync now agrees with what the resync wrote.
    explained = stack.call("GET", f"/v1/skus/{s}").json()
    assert explained["agreed"] == cat.sellable[s]

    second = stack.wait_job(stack.start_resync(dry_run=True))
    assert with_action(stack.plan(second["id"]), "update_woocommerce", "update_keycrm", "update_both") == set()
    assert second["counts"]["problems"]["duplicate_in_woocommerce"] == 3


@pytest.mark.parametrize("stack", ["keycrm"], indirect=True)
def test_s12_worker_killed_half_way_resumes_without_writing_anything_twice(stack, cat):
    stack.start(cat.keycrm_offers(), cat.woo_products())
    db = sqlite3.connect(stack.tmp / "db.sqlite3")
    # Slow KeyCRM down so that "half way through the planning" lasts long enough to hit.
    stack.sim.control.set_faults(latency=0.05, paths=["/offers"], methods=["GET"])
    job = stack.start_resync(dry_run=False)
    mid = wait_until(lambda: (lambda j: j if j["done"] >= 1000 else None)(stack.job(job)), timeout=30,
                     interval=0.02, what="half of the KeyCRM reads")
    assert mid["phase"] == "planning_keycrm" and isinstance(mid["eta_s"], float) and mid["eta_s"] > 0
    stack.worker.kill()
    stack.sim.control.clear_faults()
    # The first WooCommerce batch will be applied but answered only after a while (a lost answer).
    stack.peer.control.set_faults(hang_next=1, hang_seconds=5.0, after_commit=True, status=500,
                                  path_contains="keycrm-bridge/v1/stock")
    stack.start_worker()
    # On the wire: marked in flight, and the peer took it (its one armed hang is used up).
    wait_until(lambda: db.execute("SELECT count(*) FROM resync_batches WHERE status = 'inflight'").fetchone()[0]
               and stack.peer.control._call("GET", "faults")["hang_next"] == 0,
               timeout=30, interval=0.02, what="a WooCommerce batch on the wire")
    # The batch is marked before it is sent: give the worker's resync lane the moment to send it (the
    # peer holds it for 5 s before applying), so the kill lands while the answer is outstanding.
    time.sleep(1.0)
    stack.worker.kill()                       # SIGKILL while the batch is in flight
    stack.start_worker()
    st = stack.wait_job(job, timeout=60)
    assert st["errors"] == 0 and st["counts"]["writes"] == {"woocommerce_done": 300}
    assert all(stack.woo_stock(s) == cat.sellable[s] for s in cat.drifted)
    writes = stack.woo_stock_writes()
    assert len(writes) == 300 and max(writes.values()) == 1, f"written twice: {[k for k, v in writes.items() if v > 1]}"
    assert '"landed": 100, "resend": 0' in (stack.tmp / "worker.log").read_text(), "the unanswered batch was verified"
    # The reads resumed from the checkpoint: every page once (the page on the wire at the kill may repeat).
    pages = [(r["path"], r["query"].get("page")) for r in stack.sim.control.requests(method="GET")
             if r["path"] in ("/offers/stocks", "/offers") and "page" in r["query"] and r["status"] == 200]
    # 40 stock pages, and the first offers page only (its total matches: no offer lacks stock rows).
    assert len(set(pages)) == 41 and len(pages) <= 42, len(pages)


@pytest.mark.parametrize("stack", [("woocommerce", {"KEYCRM_READ_WAREHOUSE_IDS": "1"})], indirect=True)
def test_s12_woocommerce_mode_writes_keycrm_in_one_put_through_a_429_storm(stack, cat):
    stack.start(cat.keycrm_offers(), cat.woo_products())
    items = stack.plan(stack.wait_job(stack.start_resync(dry_run=True))["id"])
    assert_report_is_exactly_s12(items, cat, "update_keycrm")
    # KeyCRM now allows 8 requests a second: the bridge's own budget does not know, so it meets 429s
    # (the resync reads 41 pages: 40 of stock, the first of /offers).
    stack.sim.control.rate(limit=8, window=1.0, reset=True)
    mark = stack.sim.control.last_seq()
    st = stack.wait_job(stack.start_resync(dry_run=False), timeout=180)
    log = stack.sim.control.requests(mark, bodies=False)
    assert sum(1 for r in log if r["status"] == 429) >= 3, "no 429 storm happened"
    assert st["errors"] == 0 and st["counts"]["writes"] == {"keycrm_done": 300}
    puts = [r for r in log if r["method"] == "PUT" and r["status"] == 202]
    assert len(puts) == 1, "300 rows fit one PUT /offers/stocks"
    truth = stack.sim.control.sellable_map(cat.drifted)
    assert truth == {s: cat.woo_stock[s] for s in cat.drifted}, "KeyCRM sellable set to WooCommerce stock"
    reserved = [s for s in cat.drifted if cat.reserve[s]]
    assert reserved and all(stack.sim.control.truth([s])[s]["quantity"] == cat.woo_stock[s] + 1 for s in reserved[:5])
    assert max(stack.keycrm_stock_writes().values()) == 1
    stack.sim.control.rate(limit=6000, window=60.0, reset=True)
    second = stack.plan(stack.wait_job(stack.start_resync(dry_run=True))["id"])
    assert with_action(second, "update_keycrm", "update_woocommerce", "update_both") == set()


@pytest.mark.parametrize("stack", ["keycrm"], indirect=True)
def test_s9_lookalikes_empty_unmanaged_and_shared_skus_are_reported_never_merged(stack):
    kc = [{"sku": "А-100", "quantity": 5},            # Cyrillic А
          {"sku": "b-200", "quantity": 5},
          {"sku": "VAR-1", "quantity": 3}, {"sku": "OK-1", "quantity": 9}, {"sku": "NM-1", "quantity": 4},
          {"sku": "V-P", "quantity": 2}, {"sku": "CAP", "quantity": 9}]
    woo = [simple("A-100", 5), simple("B-200", 5), simple("OK-1", 4), simple("", 3),
           {**simple("NM-1", None)},
           {"type": "variable", "name": "Shirt", "sku": "V-P", "variations": [
               {"sku": "VAR-1", "regular_price": "5.00", "manage_stock": True, "stock_quantity": 3}]},
           {"type": "variable", "name": "Cap", "sku": "CAP", "variations": [
               {"sku": "CAP", "regular_price": "5.00", "manage_stock": True, "stock_quantity": 1}]}]
    stack.start(kc, woo)
    st = stack.wait_job(stack.start_resync(dry_run=True))
    items = by_sku(stack.plan(st["id"]))
    assert items["A-100"]["probable_match"] == "А-100" and items["А-100"]["probable_match"] == "A-100"
    assert "lookalike" in items["A-100"]["problems"] and "only_in_woocommerce" in items["A-100"]["problems"]
    assert "lookalike" in items["b-200"]["problems"] and "only_in_keycrm" in items["b-200"]["problems"]
    assert items[""]["problems"] == ["empty_sku"]
    assert items["NM-1"]["problems"] == ["stock_not_managed"] and items["NM-1"]["action"] == "none"
    assert items["CAP"]["problems"] == ["parent_and_variation_share_sku"]
    assert items["V-P"]["problems"] == ["matches_a_variable_parent"]
    assert items["VAR-1"]["problems"] == [] and items["VAR-1"]["action"] == "none"
    assert items["OK-1"]["action"] == "update_woocommerce" and items["OK-1"]["woo_target"] == 9
    applied = stack.wait_job(stack.start_resync(dry_run=False, create_missing=True))
    assert applied["counts"]["writes"] == {"woocommerce_done": 1}, "lookalikes are never merged nor created"
    assert stack.woo_stock("OK-1") == 9 and stack.woo_stock("A-100") == 5
    assert stack.sim.control.truth(["A-100"])["A-100"] is None


@pytest.mark.parametrize("stack", ["keycrm"], indirect=True)
def test_create_missing_creates_products_and_variations_in_keycrm_then_maps_them(stack):
    kc = [{"name": "Hoodie", "offers": [{"sku": "H-S", "quantity": 2}]}, {"sku": "KEEP-1", "quantity": 5}]
    woo = [simple("KEEP-1", 5), simple("NEW-1", 7, regular_price="12.50"),
           {"type": "variable", "name": "Hoodie", "variations": [
               {"sku": "H-S", "regular_price": "30.00", "manage_stock": True, "stock_quantity": 2},
               {"sku": "H-M", "regular_price": "30.00", "manage_stock": True, "stock_quantity": 4}]},
           {"type": "variable", "name": "Socks", "variations": [
               {"sku": f"SO-{c}", "regular_price": "3.00", "manage_stock": True, "stock_quantity": n}
               for c, n in (("R", 1), ("G", 0))]}]
    stack.start(kc, woo)
    st = stack.wait_job(stack.start_resync(dry_run=True, create_missing=True))
    assert with_action(stack.plan(st["id"]), "create_keycrm") == {"NEW-1", "H-M", "SO-R", "SO-G"}
    assert stack.sim.control.truth(["NEW-1"])["NEW-1"] is None, "the dry run created nothing"
    applied = stack.wait_job(stack.start_resync(dry_run=False, create_missing=True))
    assert applied["errors"] == 0
    truth = stack.sim.control.truth(["NEW-1", "H-M", "H-S", "SO-R", "SO-G"])
    assert truth["NEW-1"]["sellable"] == 7 and truth["NEW-1"]["price"] == 12.5
    assert truth["H-M"]["sellable"] == 4
    assert truth["H-M"]["product_id"] == truth["H-S"]["product_id"], "a new variation joins its sibling's product"
    assert truth["SO-R"]["product_id"] == truth["SO-G"]["product_id"] != truth["H-S"]["product_id"]
    assert truth["SO-R"]["sellable"] == 1 and truth["SO-G"]["sellable"] == 0
    posts = stack.sim.control.requests(method="POST")
    assert sum(1 for r in posts if r["path"] == "/products") == 2, "NEW-1 and Socks, each created once"
    second = stack.wait_job(stack.start_resync(dry_run=True))
    items = stack.plan(second["id"])
    assert {i["sku"] for i in items if i["problems"] or i["action"] != "none"} == set()


@pytest.mark.parametrize("stack", ["keycrm"], indirect=True)
def test_resync_api_is_signed_and_answers_json_errors(stack):
    import requests

    stack.start([{"sku": "X-1", "quantity": 1}], [simple("X-1", 1)], worker=False)
    url = stack.web.url
    assert requests.post(url + "/v1/resync", json={"dry_run": True}, timeout=5).status_code == 401
    r = stack.call("POST", "/v1/resync", {"dry_run": "yes"})
    assert r.status_code == 422 and r.json()["error"]
    assert stack.call("GET", "/v1/resync/nope").status_code == 404
    job = stack.start_resync(dry_run=True)
    st = stack.job(job)
    assert st["phase"] == "planning_keycrm" and st["done"] == 0, "the HTTP layer only creates the job"
    assert stack.sim.control.requests(method="GET") == [], "no KeyCRM call from a request"
    r = stack.call("GET", f"/v1/resync/{job}/plan.json")
    assert r.status_code == 409 and r.json()["detail"]["phase"] == "planning_keycrm"
    stack.start_worker()
    assert stack.wait_job(job)["counts"]["actions"]["none"] == 1
    assert stack.job("latest")["id"] == job
