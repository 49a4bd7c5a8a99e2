"""Headless Chromium for the browser tests, driven over the DevTools protocol (stdlib only): start it
on a fresh profile, and a minimal WebSocket client for its page."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

DEADLINE_S = 30.0


class DevTools:
    """A minimal WebSocket client for one DevTools page target."""

    def __init__(self, ws_url: str) -> None:
        rest = ws_url.removeprefix("ws://")
        hostport, path = rest.split("/", 1)
        host, port = hostport.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=DEADLINE_S)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(4096)
        if b" 101 " not in response.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"websocket handshake failed: {response[:200]!r}")
        self.buffer = response.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0
        self.exceptions: list[str] = []

    def _recv_exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("devtools connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _read_message(self) -> dict[str, Any]:
        payload = b""
        while True:
            head = self._recv_exact(2)
            fin, opcode, length = head[0] & 0x80, head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._recv_exact(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._recv_exact(8))[0]
            data = self._recv_exact(length)
            if opcode == 0x9:  # ping: answer and keep reading
                self._send_frame(0xA, data)
                continue
            payload += data
            if fin:
                return json.loads(payload)

    def _send_frame(self, opcode: int, data: bytes) -> None:
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        if len(data) < 126:
            header += bytes([0x80 | len(data)])
        elif len(data) < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(data))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(data))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + masked)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        wanted = self.next_id
        self._send_frame(0x1, json.dumps({"id": wanted, "method": method, "params": params}).encode())
        while True:
            message = self._read_message()
            if message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.exceptions.append(str(details.get("exception", {}).get("description") or details.get("text")))
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS error in {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str) -> Any:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            try:
                value = self.js(expression)
            except RuntimeError:
                value = None  # page in the middle of navigating
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def login(self, wp: str, user: str, password: str) -> None:
        """Log into wp-admin through its form (the one login helper of every browser test)."""
        self.goto(f"{wp}/wp-login.php")
        self.js(
            f"document.getElementById('user_login').value = {json.dumps(user)};"
            f"document.getElementById('user_pass').value = {json.dumps(password)};"
            "document.getElementById('wp-submit').click(); true"
        )
        self.wait_for("location.pathname.startsWith('/wp-admin') && document.readyState === 'complete'", "wp-admin")

    def connect_sidecar(self, wp: str, sidecar_url: str, secret: str) -> None:
        """Save the sidecar's URL and secret through the plugin page's form."""
        self.goto(f"{wp}/wp-admin/admin.php?page=keycrm-bridge")
        self.js(
            f"document.getElementById('kcb_sidecar_url').value = {json.dumps(sidecar_url)};"
            f"document.getElementById('kcb_new_secret').value = {json.dumps(secret)};"
            "document.getElementById('kcb_sidecar_url').form.querySelector('[type=submit]').click(); true"
        )
        self.wait_for("location.search.includes('kcb_notice=saved') && document.readyState === 'complete'", "saved")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for(
            f"document.readyState === 'complete' && location.href.startsWith({json.dumps(url.split('#')[0][:60])})",
            f"page {url}",
        )


def start_chromium(profile: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if binary is None:
        raise SystemExit("chromium not found")
    proc = subprocess.Popen(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={profile}",
         "--window-size=1280,1600", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = Path(profile) / "DevToolsActivePort"
    deadline = time.monotonic() + DEADLINE_S
    while not (port_file.exists() and port_file.read_text().strip()):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("chromium did not start its DevTools endpoint")
        time.sleep(0.1)
    port = port_file.read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:  # noqa: S310
        targets = json.load(reply)
    page = next(t for t in targets if t["type"] == "page")
    return proc, page["webSocketDebuggerUrl"]
