#!/usr/bin/env python3
"""Stand-in for the sidecar in the plugin tests.

A real HTTP server on 127.0.0.1 that checks the plugin's HMAC signatures exactly as the sidecar contract
says, validates every batch against the project's JSON Schema, records what it accepted, and can be told
to misbehave: answer 401, 500, garbage (200 with a non-JSON body), or hang past the plugin's timeout.
It also answers the signed GET /v1/status and, when enabled, the resync API: POST /v1/resync, GET
/v1/resync/{id} (finished after three polls, then naming its report like the sidecar's status_of) and
GET /v1/resync/{id}/plan.csv|plan.json (409 until finished; "mode" 401/500/hang applies to these).

Control (unsigned, test-only): POST /_control {"mode": "ok|401|500|garbage|hang", "hang_s": 30,
"resync": bool, "unmatched": [...], "status": {more status fields}, "report_rows": n, "finished_resync": "id",
"resync_erp": {the erp section of a resync's status}}; GET /v1/resync/{id}/rows answers the job and no rows.
GET /_batches (also lists the signed GETs it answered, as "gets"), POST /_reset.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from jsonschema import Draft202012Validator

MAX_BODY = 1024 * 1024
WINDOW_S = 300


class State:
    def __init__(self, secret: str, validator: Draft202012Validator, record_path: Path | None) -> None:
        self.secret = secret.encode()
        self.validator = validator
        self.record_path = record_path
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.reset()

    def reset(self) -> None:
        self.mode = "ok"
        self.hang_s = 30.0
        self.resync_enabled = False
        self.resync_total = 120
        self.resyncs: dict[str, dict[str, Any]] = {}
        self.unmatched: list[dict[str, Any]] = []
        self.erp: dict[str, Any] | None = None
        self.status_extra: dict[str, Any] = {}  # more fields of GET /v1/status (excluded_skus, quarantine)
        self.report_rows = 3
        self.resync_erp: dict[str, Any] | None = None  # `erp` of a finished resync's status (erp mode)
        self.gets: list[dict[str, Any]] = []
        self.batches: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.release.set()
        self.release = threading.Event()

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.batches.append(entry)
            if self.record_path is not None:
                with self.record_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    server_version = "kcb-test-receiver/1"
    state: State

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        return

    # -- helpers -------------------------------------------------------------------------------------
    def _body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._json(413, {"error": "too_large", "detail": f"{length} bytes"})
            return None
        return self.rfile.read(length) if length else b""

    def _json(self, status: int, payload: Any) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _signature_problem(self, body: bytes) -> str | None:
        """The contract's v2 rule, written out here on its own so that it checks the PHP independently."""
        ts = self.headers.get("X-Bridge-Timestamp", "")
        sig = self.headers.get("X-Bridge-Signature", "")
        if not re.fullmatch(r"[0-9]{1,12}", ts) or not sig.startswith("v2="):
            return "missing signature"
        if abs(time.time() - int(ts)) > WINDOW_S:
            return "stale timestamp"
        path, _, query = self.path.partition("?")
        canonical = quote(unquote(path), safe="/")
        message = f"v2\n{self.command}\n{canonical}\n{query}\n{ts}\n".encode() + body
        expected = hmac.new(self.state.secret, message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sig[len("v2="):]):
            return "bad signature"
        return None

    def _misbehave(self) -> bool:
        """Apply the failure mode; True when the request was answered (or dropped) here."""
        mode = self.state.mode
        if mode == "401":
            self._json(401, {"error": "unauthorized", "detail": "test mode"})
        elif mode == "500":
            self._json(500, {"error": "internal", "detail": "test mode"})
        elif mode == "garbage":
            raw = b"<html><body>502 Bad Gateway</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        elif mode == "hang":
            self.state.release.wait(self.state.hang_s)
            self.close_connection = True
        else:
            return False
        return True

    # -- routes --------------------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        body = self._body()
        if body is None:
            return
        if self.path == "/_control":
            self._control(json.loads(body or b"{}"))
        elif self.path == "/_reset":
            self.state.reset()
            self._json(200, {"ok": True})
        elif self.path == "/v1/events":
            self._events(body)
        elif self.path == "/v1/resync":
            self._resync_start(body)
        elif re.fullmatch(r"/v1/quarantine/\d+/(retry|drop)", self.path):
            self._quarantine(body)
        else:
            self._json(404, {"error": "not_found", "detail": self.path})

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        if self.path == "/_batches":
            with self.state.lock:
                self._json(200, {"batches": self.state.batches, "refused": self.state.refused, "gets": self.state.gets})
            return
        if self.path == "/_health":
            self._json(200, {"ok": True})
            return
        problem = self._signature_problem(b"")
        with self.state.lock:
            self.state.gets.append({
                "path": self.path, "signed": problem is None, "timestamp": self.headers.get("X-Bridge-Timestamp"),
                "user_agent": self.headers.get("User-Agent"),
            })
        if problem is not None:
            self._json(401, {"error": "unauthorized", "detail": problem})
            return
        parts = self.path.split("/")  # "", "v1", "resync", id[, "plan.csv"]
        if self.path == "/v1/status":
            self._status()
        elif self.state.resync_enabled and len(parts) == 4 and parts[2] == "resync":
            self._resync_progress(parts[3])
        elif self.state.resync_enabled and len(parts) == 5 and parts[2] == "resync" and parts[4].startswith("rows"):
            self._resync_rows(parts[3])
        elif self.state.resync_enabled and len(parts) == 5 and parts[2] == "resync" and parts[4].startswith("plan."):
            self._resync_plan(parts[3], parts[4].removeprefix("plan."))
        else:
            self._json(404, {"error": "not_found", "detail": self.path})

    def _control(self, cmd: dict[str, Any]) -> None:
        st = self.state
        if "mode" in cmd:
            st.mode = str(cmd["mode"])
            st.release.set()  # free requests hanging from an earlier mode
            st.release = threading.Event()
        if "hang_s" in cmd:
            st.hang_s = float(cmd["hang_s"])
        if "resync" in cmd:
            st.resync_enabled = bool(cmd["resync"])
        if "unmatched" in cmd:
            st.unmatched = list(cmd["unmatched"])
        if "erp" in cmd:
            st.erp = cmd["erp"]
        if "status" in cmd:
            st.status_extra = dict(cmd["status"] or {})
        if "report_rows" in cmd:
            st.report_rows = int(cmd["report_rows"])
        if "resync_erp" in cmd:
            st.resync_erp = cmd["resync_erp"]
        if "finished_resync" in cmd:
            st.resync_enabled = True
            st.resyncs[str(cmd["finished_resync"])] = {"dry_run": True, "polls": 3}
        self._json(200, {"mode": st.mode, "resync": st.resync_enabled})

    def _events(self, body: bytes) -> None:
        if self._misbehave():
            return
        problem = self._signature_problem(body)
        if problem is not None:
            self.state.refused.append({"why": problem})
            self._json(401, {"error": "unauthorized", "detail": problem})
            return
        try:
            batch = json.loads(body)
        except ValueError as exc:
            self._json(400, {"error": "not_json", "detail": str(exc)})
            return
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in self.state.validator.iter_errors(batch)]
        self.state.record({"received_at": time.time(), "valid": not errors, "errors": errors[:20], "batch": batch})
        if errors:
            self._json(422, {"error": "schema", "detail": errors[:20]})
            return
        if self.state.mode == "empty200":
            self._json(200, {})  # a 2xx that acknowledges nothing (a proxy, a misconfigured route)
            return
        self._json(202, {"accepted": len(batch["events"]), "batch_sha256": hashlib.sha256(body).hexdigest()})

    def _quarantine(self, body: bytes) -> None:
        """POST /v1/quarantine/{id}/retry|drop: 202 for an id in the status' quarantine items, else 404; kept
        in "gets" (with its method) so a test sees what the page asked."""
        problem = self._signature_problem(body)
        with self.state.lock:
            self.state.gets.append({"path": self.path, "method": "POST", "signed": problem is None})
        if problem is not None:
            self._json(401, {"error": "unauthorized", "detail": problem})
            return
        _, _, _, item, action = self.path.split("/")
        items = (self.state.status_extra.get("quarantine") or {}).get("items") or []
        if not any(str(i.get("id")) == item for i in items):
            self._json(404, {"error": "nothing set aside under this id"})
            return
        self._json(202, {"id": int(item), "status": "retry" if action == "retry" else "dropped"})

    def _status(self) -> None:
        now = time.time()
        self._json(200, {
            "mode": "keycrm",
            "queue_depth": 3,
            "oldest_pending_age_s": 12,
            "last_keycrm_success_at": now - 30,
            "last_woocommerce_success_at": now - 45,
            "unmatched_skus": self.state.unmatched,
            "budget_used_last_minute": 7,
            "erp": self.state.erp,
            **self.state.status_extra,
        })

    def _resync_start(self, body: bytes) -> None:
        problem = self._signature_problem(body)
        if problem is not None:
            self._json(401, {"error": "unauthorized", "detail": problem})
            return
        if not self.state.resync_enabled:
            self._json(404, {"error": "not_found", "detail": "/v1/resync"})
            return
        job_id = f"rs-{len(self.state.resyncs) + 1}"
        self.state.resyncs[job_id] = {"dry_run": bool(json.loads(body or b"{}").get("dry_run")), "polls": 0}
        self._json(202, {"id": job_id})

    def _resync_progress(self, job_id: str) -> None:
        job = self.state.resyncs.get(job_id)
        if job is None:
            self._json(404, {"error": "not_found", "detail": job_id})
            return
        job["polls"] += 1
        total = self.state.resync_total
        done = min(total, job["polls"] * total // 3)
        status: dict[str, Any] = {
            "id": job_id,
            "phase": "done" if done >= total else "planning_keycrm",
            "done": done,
            "total": total,
            "errors": 0,
            "eta_s": None if done >= total else max(0, (total - done) // 40),
            "dry_run": job["dry_run"],
            "finished_at": time.time() if done >= total else None,
        }
        if done >= total:
            base = f"/v1/resync/{job_id}/plan"
            status["counts"] = {"skus": self.state.report_rows}
            status["report"] = {"json": base + ".json", "csv": base + ".csv"}
        self._json(200, status)

    def _resync_rows(self, job_id: str) -> None:
        """GET /v1/resync/{id}/rows: no rows, but the job with its counts (and, in erp mode, ``erp``)."""
        if job_id not in self.state.resyncs:
            self._json(404, {"error": "no such resync", "detail": job_id})
            return
        job: dict[str, Any] = {"id": job_id, "phase": "done", "counts": {"skus": self.state.report_rows}}
        if self.state.resync_erp is not None:
            job["erp"] = self.state.resync_erp
        self._json(200, {"job": job, "total": 0, "offset": 0, "limit": 50, "rows": []})

    def report_csv(self) -> bytes:
        """Columns of the sidecar's REPORT_COLUMNS; rows with a comma, quotes and Cyrillic to prove bytes pass as-is."""
        lines = ["sku,action,problems,probable_match,woo_product_ids,woo_parent_id,woo_stock,keycrm_offer_ids,"
                 "keycrm_product_id,keycrm_sellable,woo_target,keycrm_target,woo_status,keycrm_status,error,reason"]
        for n in range(1, self.state.report_rows + 1):
            lines.append(f'SKU-{n:06d},update_woocommerce,,,{100 + n},,{n % 7},{500 + n},{900 + n},{n % 5},'
                         f'{n % 5},,planned,,,"Сорочка ""лляна"", розмір {n % 3 + 1}"')
        return ("\r\n".join(lines) + "\r\n").encode()

    def _resync_plan(self, job_id: str, fmt: str) -> None:
        if self._misbehave():
            return
        job = self.state.resyncs.get(job_id)
        if fmt not in ("csv", "json"):
            self._json(404, {"error": "not found", "detail": "use plan.json or plan.csv"})
            return
        if job is None:
            self._json(404, {"error": "no such resync", "detail": job_id})
            return
        if job["polls"] < 3:
            self._json(409, {"error": "the plan is not ready yet", "detail": {"phase": "planning_keycrm"}})
            return
        if fmt == "csv":
            raw, mime = self.report_csv(), "text/csv; charset=utf-8"
        else:
            items = [{"sku": f"SKU-{n:06d}", "action": "update_woocommerce", "reason": "Сорочка"}
                     for n in range(1, self.state.report_rows + 1)]
            raw = json.dumps({"job": {"id": job_id, "phase": "done"}, "items": items}, ensure_ascii=False).encode()
            mime = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Disposition", f'attachment; filename="keycrm-resync-{job_id}.{fmt}"')
        if fmt == "json":
            self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        # The sidecar streams the CSV from a generator (length unknown up front): send it in pieces
        # without Content-Length, ending with the connection, so the plugin cannot rely on a length.
        for start in range(0, len(raw), 65536):
            self.wfile.write(raw[start:start + 65536])
        self.close_connection = True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--schema", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    schema = json.loads(args.schema.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    Handler.state = State(args.secret, Draft202012Validator(schema), args.record)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
