"""The 1C / BAS "обмен с сайтом" endpoint (CommerceML 2), as 1C:УТ, КА, ERP and BAS speak it.

``?type=catalog&mode=checkauth`` (HTTP Basic) → ``success``, cookie name, value, ``sessid=…``,
``timestamp=…``; ``mode=init`` → ``zip=yes``, ``file_limit=N``; ``mode=file&filename=…`` appends
the body to that file (a big file comes as several POSTs); ``mode=import&filename=…`` queues the
file for the worker and answers ``progress`` until the worker is done, then ``success`` or
``failure`` and the reason; ``deactivate`` and ``complete`` close the exchange. Only the first line
of an answer counts for 1C; answers are windows-1251, as 1C-Bitrix sends them.

Like every route here it checks, stores durably and answers: an upload goes to disk with each
chunk's length and SHA-256 recorded, nothing is parsed or sent to KeyCRM on the request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request

from ..clock import Clock
from ..config import Settings
from ..store import Store
from .jobs import FINALIZE, exchange_dir, queue_job
from .safety import HostilePackage, fsync_file, safe_relative

log = logging.getLogger("keycrm_bridge.erp.1c")

COOKIE = "kcb_1c_session"
SESSION_TTL_S = 6 * 3600
ENCODING = "cp1251"


def answer(*lines: str, status: int = 200) -> Response:
    body = "\n".join(lines) + "\n"
    resp = Response(body.encode(ENCODING, errors="replace"), status=status,
                    content_type="text/plain; charset=windows-1251")
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Basic realm="keycrm-bridge 1C exchange"'
    return resp


def failure(reason: str, status: int = 200) -> Response:
    return answer("failure", reason.replace("\n", " ")[:400], status=status)


def make_onec_blueprint(settings: Settings, clock: Clock, store: Callable[[], Store]) -> Blueprint:
    assert settings.erp is not None
    erp = settings.erp
    bp = Blueprint("erp_1c", __name__)
    def conn() -> Any:
        return store().conn

    def basic_ok() -> bool:
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return False
        user_ok = hmac.compare_digest((auth.username or "").encode(), erp.onec_user.encode())
        pass_ok = hmac.compare_digest((auth.password or "").encode(), erp.onec_password.encode())
        return user_ok and pass_ok

    def session() -> dict[str, Any] | None:
        token = request.cookies.get(COOKIE) or request.args.get("sessid") or ""
        if not token:
            return None
        row = conn().execute("SELECT * FROM erp_exchanges WHERE cookie = ?", (token,)).fetchone()
        if row is None or clock.now() - row["last_at"] > SESSION_TTL_S:
            return None
        conn().execute("UPDATE erp_exchanges SET last_at = ? WHERE id = ?", (clock.now(), row["id"]))
        return dict(row)

    @bp.before_request
    def _own_limit() -> None:
        request.max_content_length = None  # uploads are bounded by ERP_MAX_UPLOAD_MB while streaming

    @bp.route("/v1/erp/1c/exchange", methods=["GET", "POST"])
    def exchange() -> Response:
        kind = request.args.get("type", "catalog")
        mode = request.args.get("mode", "")
        if mode == "checkauth":
            return checkauth()
        sess = session()
        if sess is None:
            return failure("not authorized: the session is unknown or expired, start with mode=checkauth", 401)
        if kind == "sale":
            return sale(mode)
        if kind != "catalog":
            return failure(f"type={kind[:20]} is not served; use type=catalog")
        handlers = {"init": init, "file": upload, "import": import_, "deactivate": close, "complete": close}
        handler = handlers.get(mode)
        if handler is None:
            return failure(f"unknown mode {mode[:20]!r}")
        return handler(sess)

    def checkauth() -> Response:
        if not basic_ok():
            log.warning("1C exchange: wrong login or password", extra={"remote": request.remote_addr})
            return failure("wrong login or password (ERP_1C_USER / ERP_1C_PASSWORD)", 401)
        token = secrets.token_hex(16)
        now = clock.now()
        conn().execute("INSERT INTO erp_exchanges (cookie, created_at, last_at) VALUES (?, ?, ?)", (token, now, now))
        resp = answer("success", COOKIE, token, f"sessid={token}", f"timestamp={int(now)}")
        resp.set_cookie(COOKIE, token, httponly=True, samesite="Lax")
        return resp

    def init(sess: dict[str, Any]) -> Response:
        c = conn()
        now = clock.now()
        # An exchange that never said "complete" (older 1C) ends when the next one starts.
        for (old,) in c.execute("SELECT id FROM erp_exchanges WHERE status = 'open' AND id != ? AND uploaded_bytes > 0",
                                (sess["id"],)).fetchall():
            c.execute("UPDATE erp_exchanges SET status = 'closed' WHERE id = ?", (old,))
            queue_job(c, "1c", old, FINALIZE, now)
        return answer("zip=yes", f"file_limit={erp.file_limit_mb * 2**20}", f"sessid={sess['cookie']}",
                      "version=3.1")

    def upload(sess: dict[str, Any]) -> Response:
        try:
            rel = safe_relative(request.args.get("filename", ""))
        except HostilePackage as exc:
            return failure(str(exc))
        limit = erp.max_upload_mb * 2**20
        declared = request.content_length
        used = int(sess["uploaded_bytes"])
        if declared is not None and used + declared > limit:
            log.warning("1C upload refused: too large", extra={"declared": declared, "file": str(rel)})
            return failure(f"the exchange would exceed ERP_MAX_UPLOAD_MB={erp.max_upload_mb} "
                           f"({(used + declared) // 2**20} MB); nothing was stored", 413)
        c = conn()
        path = exchange_dir(settings, sess["id"]) / "files" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        recorded = c.execute("SELECT coalesce(max(offset + length), 0), count(*) FROM erp_chunks"
                             " WHERE exchange_id = ? AND filename = ?", (sess["id"], str(rel))).fetchone()
        offset, seq = int(recorded[0]), int(recorded[1])
        digest = hashlib.sha256()
        length = 0
        # A body without Content-Length comes chunked; gunicorn decodes it in wsgi.input.
        stream = request.stream if declared is not None else request.environ["wsgi.input"]
        with open(path, "ab") as fh:
            fh.truncate(offset)  # bytes after the last recorded chunk are a cut-off upload: drop them
            fh.seek(offset)
            while True:
                block = stream.read(1 << 16)
                if not block:
                    break
                length += len(block)
                if used + length > limit:
                    fh.truncate(offset)
                    log.warning("1C upload refused while streaming: too large", extra={"file": str(rel)})
                    return failure(f"the exchange exceeds ERP_MAX_UPLOAD_MB={erp.max_upload_mb}; "
                                   "this file was not stored", 413)
                digest.update(block)
                fh.write(block)
            fsync_file(fh)  # "success" promises the chunk is on disk
        if declared is not None and length != declared:
            with open(path, "ab") as fh:
                fh.truncate(offset)
            return failure(f"{rel} arrived incomplete ({length} of {declared} bytes); send it again")
        with store().transaction() as tx:
            tx.execute("INSERT INTO erp_chunks (exchange_id, filename, seq, offset, length, sha256, at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)", (sess["id"], str(rel), seq, offset, length,
                                                         digest.hexdigest(), clock.now()))
            tx.execute("UPDATE erp_exchanges SET uploaded_bytes = uploaded_bytes + ? WHERE id = ?",
                       (length, sess["id"]))
        return answer("success")

    def import_(sess: dict[str, Any]) -> Response:
        filename = request.args.get("filename", "")
        try:
            safe_relative(filename)
        except HostilePackage as exc:
            return failure(str(exc))
        c = conn()
        job = c.execute("SELECT id, status, message FROM erp_jobs WHERE exchange_id = ? AND filename = ?"
                        " ORDER BY id DESC LIMIT 1", (sess["id"], filename)).fetchone()
        if job is None:
            queue_job(c, "1c", sess["id"], filename, clock.now())
            return answer("progress", f"{filename}: queued")
        if job["status"] == "done":
            return answer("success", job["message"] or "")
        if job["status"] == "failed":
            return failure(job["message"] or "the package was refused")
        return answer("progress", f"{filename}: {job['status']}")

    def close(sess: dict[str, Any]) -> Response:
        c = conn()
        if c.execute("UPDATE erp_exchanges SET status = 'closed' WHERE id = ? AND status = 'open'",
                     (sess["id"],)).rowcount:
            queue_job(c, "1c", sess["id"], FINALIZE, clock.now())
        return answer("success")

    def sale(mode: str) -> Response:
        # Orders reach KeyCRM through KeyCRM's own shop integration; an exchange that also asks for
        # orders gets an empty document, so it does not fail on our account.
        if mode == "init":
            return answer("zip=no", f"file_limit={erp.file_limit_mb * 2**20}")
        if mode == "query":
            doc = (f'<?xml version="1.0" encoding="windows-1251"?>\n<КоммерческаяИнформация ВерсияСхемы="2.08" '
                   f'ДатаФормирования="{clock.now():.0f}"/>\n')
            return Response(doc.encode(ENCODING), content_type="application/xml; charset=windows-1251")
        return answer("success")

    return bp
