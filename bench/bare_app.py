"""The baseline: the least a durable event door can do, under the same gunicorn settings as ours.

Per request: read the body, check the HMAC signature with the same code the sidecar uses, parse
the JSON, and commit one row to SQLite in WAL mode with ``synchronous=FULL`` (an fsync per commit),
then answer 202. Anything the sidecar does beyond this is what ``ingest_ratio_*`` charges it for.
"""

import json
import os
import sqlite3
import threading
import time

from flask import Flask, request

from keycrm_bridge import signing

app = Flask("bare")
SECRET = os.environ["BRIDGE_SHARED_SECRET"]
DB = os.environ["BARE_DATABASE_PATH"]
_local = threading.local()


def _conn() -> sqlite3.Connection:
    c = getattr(_local, "conn", None)
    if c is None:
        c = _local.conn = sqlite3.connect(DB, timeout=30, isolation_level=None)
        c.execute("PRAGMA busy_timeout=30000")
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=FULL")
        c.execute("CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, received_at REAL, events INTEGER,"
                  " body TEXT)")
    return c


@app.post("/v1/events")
def events():
    body = request.get_data()
    reason = signing.verify(SECRET, request.method, request.path, request.query_string.decode("utf-8", "replace"),
                            request.headers.get(signing.TIMESTAMP_HEADER), request.headers.get(signing.SIGNATURE_HEADER),
                            body, time.time())
    if reason:
        return {"error": reason}, 401
    batch = json.loads(body)
    _conn().execute("INSERT INTO inbox (received_at, events, body) VALUES (?, ?, ?)",
                    (time.time(), len(batch["events"]), body.decode()))
    return {"accepted": len(batch["events"]), "duplicates": 0}, 202
