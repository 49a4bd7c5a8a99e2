"""gunicorn's own lines (error log and access log) are JSON objects, whatever the request looked like."""

import json
import socket
from urllib.parse import urlsplit

import requests

from bridge import Web, bridge_env

TOKEN = "webhook-secret-token-logs-0123456"

# Raw request targets, sent byte for byte: quotes, backslashes, percent-encoded control characters
# (gunicorn decodes them into the path it logs), non-ASCII, the webhook token in several spellings.
ODD_TARGETS = [
    b'/a"b"c',
    b"/back\\slash\\\\end",
    b"/ctl%00nul%0Anewline%0Dcr%09tab%1Besc%7Fdel",
    b"/quote%22and%5Cbackslash%22",
    b"/%C3%A9t%C3%A9/%E2%80%A8sep",
    b"/%FF%FE-not-utf8",
    b"/v1/keycrm/webhook/" + TOKEN.encode(),
    b"/v1/keycrm/webhook/" + TOKEN.encode() + b"?x=1",
    b"/v1/keycrm/webhook/" + TOKEN.encode() + b"/more",
    b"/healthz?q=%22%5C%0A",
]


def raw(url: str, request: bytes) -> bytes:
    host, port = urlsplit(url).hostname, urlsplit(url).port
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_every_gunicorn_line_is_a_json_object_and_never_holds_the_token(tmp_path):
    log = tmp_path / "web.log"
    w = Web(bridge_env(tmp_path / "db.sqlite3", KEYCRM_WEBHOOK_TOKEN=TOKEN), log).start()
    try:
        for target in ODD_TARGETS:
            for method in (b"GET", b"POST"):
                reply = raw(w.url, method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                            b"Connection: close\r\n\r\n[]")
                assert reply.startswith(b"HTTP/1.1 "), (target, reply[:200])
        # Not HTTP at all, and a control character in the request line: gunicorn's error log reports them.
        raw(w.url, b"\x16\x03\x01 garbage \"\\ \r\n\r\n")
        raw(w.url, b"GET /bad\x01path HTTP/1.1\r\nHost: x\r\n\r\n")
        raw(w.url, b"GET /v1/keycrm/webhook/" + TOKEN.encode() + b"\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert requests.post(f"{w.url}/v1/keycrm/webhook/{TOKEN}", json=[], timeout=5).status_code in (202, 422)
    finally:
        w.stop()

    lines = log.read_text(encoding="utf-8", errors="strict").splitlines()
    records = []
    for line in lines:
        assert line.strip(), "an empty line"
        record = json.loads(line)  # every line, not only the access lines
        assert isinstance(record, dict) and {"ts", "level", "logger"} <= set(record), line
        records.append(record)
    access = [r for r in records if r["logger"] == "access"]
    gunicorn_own = [r for r in records if r["logger"].startswith("gunicorn")]
    assert len(access) >= 2 * len(ODD_TARGETS), f"{len(access)} access lines"
    assert any("Invalid request" in r["msg"] for r in gunicorn_own), "gunicorn's error log is in the stream"
    paths = {r["path"] for r in access}
    assert '/a"b"c' in paths and "/back\\slash\\\\end" in paths and '/quote"and\\backslash"' in paths
    assert "/ctl\x00nul\nnewline\rcr\ttab\x1besc\x7fdel" in paths  # kept exactly, escaped by JSON
    assert "/v1/keycrm/webhook/[redacted]" in paths and "/v1/keycrm/webhook/[redacted]/more" in paths
    assert all(isinstance(r["status"], int) for r in access)
    assert TOKEN not in log.read_text(encoding="utf-8")
