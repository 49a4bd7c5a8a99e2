"""What a shop owner does in wp-admin, as form posts the browser would send: upload and activate the plugin's
zip, fill in its page, import a product CSV (WooCommerce's importer: upload, mapping, the ajax import)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

PLUGIN = "keycrm-bridge/keycrm-bridge.php"


def _form(page: str, marker: str) -> str:
    """The HTML of the first <form> that contains ``marker``."""
    for match in re.finditer(r"<form\b.*?</form>", page, re.S):
        if marker in match.group(0):
            return match.group(0)
    raise AssertionError(f"no form with {marker!r} on the page")


def install_zip(admin: Any, zip_path: Path) -> str:
    """Plugins → Add New → Upload Plugin, then the "Activate Plugin" link of the result page."""
    from rigclient import form_fields

    page = admin.get("wp-admin/plugin-install.php?tab=upload").text
    fields = form_fields(_form(page, 'name="pluginzip"'), None)
    with zip_path.open("rb") as fh:
        r = admin.s.post(f"{admin.base}/wp-admin/update.php?action=upload-plugin", data=fields + [
            ("install-plugin-submit", "Install Now")], files={"pluginzip": (zip_path.name, fh, "application/zip")},
            timeout=300)
    r.raise_for_status()
    text = html.unescape(r.text)
    assert "Plugin installed successfully" in text, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))[-1500:]
    link = re.search(r'href="([^"]*plugins\.php\?action=activate[^"]*)"', r.text)
    assert link, "no Activate Plugin link after the upload"
    activated = admin.s.get(urljoin(f"{admin.base}/wp-admin/", html.unescape(link.group(1))), timeout=300)
    activated.raise_for_status()
    assert "Plugin activated" in activated.text or "plugin-activated" in activated.url or "activate=true" in activated.url, \
        activated.url
    return f"uploaded {zip_path.name} ({zip_path.stat().st_size} bytes), installed and activated"


def configure(admin: Any, sidecar_url: str, secret: str) -> str:
    """WooCommerce → KeyCRM Bridge: sidecar URL and shared secret through the page's own form."""
    from rigclient import form_fields

    page = admin.get("wp-admin/admin.php?page=keycrm-bridge").text
    fields = dict(form_fields(_form(page, 'value="kcb_save_settings"'), None))
    fields.update({"kcb_sidecar_url": sidecar_url, "kcb_new_secret": secret})
    r = admin.post("wp-admin/admin-post.php", list(fields.items()), allow_redirects=True)
    assert r.status_code == 200 and "kcb_notice=saved" in r.url, (r.status_code, r.url)
    nonce = re.search(r'var kcbAdmin = \{[^;]*?"nonce":"([0-9a-f]+)"', r.text)
    assert nonce, "the page's script settings"
    test = admin.post("wp-admin/admin-ajax.php", {"action": "kcb_test_connection", "nonce": nonce.group(1)})
    reply = test.json()
    assert test.status_code == 200 and reply.get("success"), reply
    return f"saved on the plugin's page; connection test: {reply['data'].get('message', reply['data'])}"


def csv_import(admin: Any, csv_text: str, scenario: str) -> int:
    """Products → Import with "update existing": the upload, the column mapping, then the ajax steps."""
    from rigclient import form_fields

    start = admin.get("wp-admin/edit.php?post_type=product&page=product_importer").text
    fields = [(n, v) for n, v in form_fields(_form(start, 'name="import"'), None) if n != "update_existing"]
    fields.append(("update_existing", "1"))
    upload = admin.s.post(f"{admin.base}/wp-admin/edit.php?post_type=product&page=product_importer",
                          data=fields + [("save_step", "Continue")],
                          files={"import": ("stock.csv", csv_text.encode(), "text/csv")}, timeout=300)
    upload.raise_for_status()
    assert "step=mapping" in upload.url, upload.url
    mapping_form = _form(upload.text, "map_to")
    mapping = form_fields(mapping_form, None)
    action = html.unescape(re.search(r'action="([^"]+)"', mapping_form).group(1))
    action = urljoin(f"{admin.base}/wp-admin/", action)
    importing = admin.s.post(action, data=mapping + [("save_step", "Run the importer")], timeout=300)
    importing.raise_for_status()
    params = json.loads(re.search(r"var wc_product_import_params = (\{.*?\});", importing.text).group(1))
    position: Any = 0
    updated = 0
    while position != "done":
        data = [("action", "woocommerce_do_ajax_product_import"), ("position", str(position)),
                ("file", params["file"]), ("update_existing", "1" if params["update_existing"] else "0"),
                ("delimiter", params["delimiter"]), ("security", params["import_nonce"]),
                ("character_encoding", params.get("character_encoding") or "")]
        data += [("mapping[from][]", v) for v in params["mapping"]["from"]]
        data += [("mapping[to][]", v) for v in params["mapping"]["to"]]
        r = admin.post("wp-admin/admin-ajax.php", data, scenario=scenario)
        reply = r.json()
        assert reply.get("success"), reply
        position = reply["data"]["position"]
        updated += int(reply["data"].get("updated", 0))
    return updated
