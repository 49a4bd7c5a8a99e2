"""What the HTTP door admits: strict JSON, and the bounded shape of KeyCRM's stock webhook.

Whatever passes here (and, for batches, the event schema) every later stage can process: the
worker re-reads stored bodies with the standard ``json`` module, SQLite stores every integer and
string, and the stock arithmetic sees finite numbers of a sane size. So the body must be UTF-8
without a byte-order mark, numbers finite and integers within ±(2^53 − 1) (what JavaScript, PHP's
floats and SQLite all hold exactly), strings free of lone surrogates (which UTF-8 cannot encode),
nesting shallow.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 16
MAX_SAFE_INT = 2**53 - 1
# Stock quantities the bridge accepts from either side: far beyond any shop, far inside a float's
# exact integers and a 32-bit column, so sums and differences stay exact.
MAX_QUANTITY = 1_000_000_000
MAX_SKU_CHARS = 191
MAX_WEBHOOK_ROWS = 10_000
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Refused(ValueError):
    """The body cannot be admitted; ``str(exc)`` says why in words the sender can act on."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Refused(f"number {text[:40]} is out of range (not a finite double)")
    return value


def _no_constant(name: str) -> Any:
    raise Refused(f"{name} is not a JSON number")


def loads(body: bytes) -> Any:
    """Parse a request body strictly, or raise :class:`Refused`."""
    if body.startswith(b"\xef\xbb\xbf"):
        raise Refused("the body starts with a byte-order mark; send UTF-8 without one")
    if body.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in body[:4]:
        raise Refused("the body is UTF-16 or UTF-32; send UTF-8")
    try:
        text = body.decode("utf-8")  # strict: refuses CESU-8 surrogate bytes and overlong forms
    except UnicodeDecodeError as exc:
        raise Refused(f"the body is not valid UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError:
        raise Refused(f"the body nests deeper than {MAX_DEPTH} levels") from None
    except Refused:
        raise
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4,300 digits
        raise Refused(f"the body is not JSON: {str(exc)[:120]}") from None
    _check(value, bool(_ESCAPED_SURROGATE.search(text)))
    return value


def _check(value: Any, surrogates_possible: bool) -> None:
    """Depth, integer range and lone surrogates, without recursion (depth is what is being bounded)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise Refused(f"the body nests deeper than {MAX_DEPTH} levels")
            children = list(item.values()) if isinstance(item, dict) else item
            if isinstance(item, dict) and surrogates_possible:
                children += list(item.keys())
            stack.extend((c, depth + 1) for c in children)
        elif isinstance(item, int) and not isinstance(item, bool):
            if abs(item) > MAX_SAFE_INT:
                raise Refused(f"integer {str(item)[:40]} is outside ±(2^53 − 1)")
        elif surrogates_possible and isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise Refused("a string holds a lone UTF-16 surrogate (\\ud800–\\udfff), which is not Unicode text")\
                    from None


def _quantity(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not -MAX_QUANTITY <= v <= MAX_QUANTITY:
        return None
    return v


def webhook_rows(body: Any) -> tuple[list[dict[str, Any]] | None, str]:
    """(the rows of a KeyCRM stock webhook, "") or (None, why not): only the four known fields are kept."""
    rows = body if isinstance(body, list) else body.get("data") if isinstance(body, dict) else None
    if not isinstance(rows, list) or not rows or len(rows) > MAX_WEBHOOK_ROWS:
        return None, f"expected a list of 1 to {MAX_WEBHOOK_ROWS} rows"
    kept = []
    for n, r in enumerate(rows):
        if not isinstance(r, dict):
            return None, f"row {n} is not an object"
        sku, offer_id = r.get("sku"), r.get("offer_id")
        if not isinstance(sku, str) or len(sku) > MAX_SKU_CHARS or _CONTROL.search(sku):
            return None, f"row {n}: sku must be a string of at most {MAX_SKU_CHARS} characters, no control characters"
        if offer_id is not None and (isinstance(offer_id, bool) or not isinstance(offer_id, int)
                                     or not 1 <= offer_id <= MAX_SAFE_INT):
            return None, f"row {n}: offer_id must be an integer from 1 to 2^53 − 1"
        in_stock, in_reserve = _quantity(r, "in_stock"), _quantity(r, "in_reserve")
        if in_stock is None or in_reserve is None:
            return None, f"row {n}: in_stock and in_reserve must be numbers within ±{MAX_QUANTITY:,}"
        kept.append({"offer_id": offer_id, "sku": sku, "in_stock": in_stock, "in_reserve": in_reserve})
    return kept, ""
