"""Request validation against KeyCRM's own OpenAPI document.

The simulator must accept what the published spec accepts and reject what it rejects, so every
rule here comes from ``spec/keycrm-openapi.yml`` (a byte-for-byte copy of KeyCRM's file). The
file is not strictly valid OpenAPI 3.0; :func:`normalise_spec` repairs the known defects listed in
``/work/shared/keycrm/README.md`` in memory and leaves the file itself untouched.

Path lookup, security and query/path parameters go through openapi-core. Bodies are checked with
the operation's own request-body schema through ``openapi_schema_validator`` (jsonschema): openapi-core
needs ~3 s for a 10,000-row ``PUT /offers/stocks`` body, the schema validator ~0.1 s.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound, ServerNotFound
from openapi_core.validation.request.exceptions import RequestBodyValidationError, SecurityValidationError
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_PATH = Path(__file__).resolve().parent.parent / "spec" / "keycrm-openapi.yml"

# Requests are validated as if they had been sent to the spec's own server, so that openapi-core's
# server matching works whatever host and port the simulator listens on.
SPEC_HOST = "https://openapi.keycrm.app"
SPEC_BASE_PATH = "/v1"

_SPEC_RESOURCE_URI = "urn:keycrm-openapi"


def normalise_spec(raw: Any) -> Any:
    """Repair the published document's known defects so validators can load it.

    * response codes are YAML integers -> every mapping key becomes a string;
    * security requirements are written ``bearerAuth: {}`` -> the value becomes a list;
    * some schemas carry a boolean ``required: true`` (OpenAPI wants a list) -> dropped; the boolean
      ``required`` of parameters, headers and request bodies (objects with ``in``, ``schema`` or
      ``content``) is legitimate and kept;
    * arrays bounded with ``maximum`` (a number keyword, ignored for arrays) mean ``maxItems``:
      the spec writes ``maximum: 10000`` on ``PUT /offers/stocks`` rows, which KeyCRM's help
      confirms as the row limit, so the simulator enforces it as ``maxItems``.
    """
    if isinstance(raw, list):
        return [normalise_spec(item) for item in raw]
    if not isinstance(raw, dict):
        return raw
    out: dict[str, Any] = {}
    is_schema = not ({"in", "schema", "content"} & {str(k) for k in raw})
    for key, value in raw.items():
        name = str(key)
        if name == "security" and isinstance(value, list):
            out[name] = [_normalise_requirement(req) for req in value]
            continue
        if name == "required" and isinstance(value, bool) and is_schema:
            continue
        out[name] = normalise_spec(value)
    if out.get("type") == "array" and isinstance(out.get("maximum"), int) and "maxItems" not in out:
        out["maxItems"] = out.pop("maximum")
    return out


def _normalise_requirement(requirement: Any) -> Any:
    if not isinstance(requirement, dict):
        return requirement
    return {str(k): (list(v) if isinstance(v, dict) else v) for k, v in requirement.items()}


@dataclass
class ValidationResult:
    """What validation found: ``status`` 0 means valid, else the HTTP status to answer."""

    status: int = 0
    message: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)
    operation_id: str | None = None
    path_pattern: str | None = None
    query: dict[str, Any] = field(default_factory=dict)
    path_params: dict[str, Any] = field(default_factory=dict)
    body: Any = None

    @property
    def ok(self) -> bool:
        return self.status == 0


@dataclass
class _Operation:
    operation_id: str
    path_pattern: str
    body_validator: OAS30Validator | None
    body_required: bool
    media_types: tuple[str, ...]


class _SpecRequest:
    """The minimal openapi-core ``Request`` protocol, without a body (bodies are checked apart)."""

    def __init__(self, method: str, path: str, query: Mapping[str, Any], headers: Headers) -> None:
        self.method = method.lower()
        self.host_url = SPEC_HOST
        self.path = SPEC_BASE_PATH + path
        self.full_url_pattern = SPEC_HOST + self.path
        self.parameters = RequestParameters(query=ImmutableMultiDict(query), header=headers)
        self.body: bytes | None = None
        self.content_type = "application/json"


def _path_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", pattern)
    regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}$")


class SpecValidator:
    """Validates simulator requests against the normalised KeyCRM spec. Build once; thread-safe."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self._openapi = OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))
        registry: Registry[Any] = Registry().with_resource(
            _SPEC_RESOURCE_URI, Resource.from_contents(spec, default_specification=DRAFT4)
        )
        # Literal paths first so that e.g. /order/import never matches /order/{orderId}.
        self._routes: list[tuple[re.Pattern[str], str, dict[str, _Operation]]] = []
        patterns = sorted(spec.get("paths", {}), key=lambda p: (p.count("{"), p))
        for pattern in patterns:
            ops: dict[str, _Operation] = {}
            for method, op in spec["paths"][pattern].items():
                if not isinstance(op, dict) or "responses" not in op:
                    continue
                ops[method.upper()] = self._operation(pattern, method, op, registry)
            self._routes.append((_path_regex(pattern), pattern, ops))

    @staticmethod
    def _operation(pattern: str, method: str, op: dict[str, Any], registry: Registry[Any]) -> _Operation:
        body = op.get("requestBody") or {}
        content = body.get("content") or {}
        validator = None
        if "application/json" in content and "schema" in content["application/json"]:
            pointer = "/".join(
                _escape_pointer(p)
                for p in ("paths", pattern, method, "requestBody", "content", "application/json")
            )
            validator = OAS30Validator(
                {"$ref": f"{_SPEC_RESOURCE_URI}#/{pointer}/schema"},
                registry=registry,
                format_checker=oas30_format_checker,
            )
        return _Operation(
            operation_id=str(op.get("operationId") or f"{method} {pattern}"),
            path_pattern=pattern,
            body_validator=validator,
            body_required=bool(body.get("required", False)),
            media_types=tuple(content),
        )

    def match(self, method: str, path: str) -> tuple[_Operation | None, dict[str, str], bool]:
        """Find the operation for ``path`` (relative to /v1): (operation, path params, path known)."""
        for regex, _pattern, ops in self._routes:
            m = regex.match(path)
            if m:
                op = ops.get(method.upper())
                return op, m.groupdict(), True
        return None, {}, False

    def validate(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any],
        headers: Mapping[str, str] | Headers,
        body: bytes | None,
        content_type: str | None,
    ) -> ValidationResult:
        """Validate one request. ``path`` is relative to the API base (``/offers/stocks``)."""
        op, path_params, known = self.match(method, path)
        if not known:
            return ValidationResult(404, "Not found.", [{"location": "path", "message": f"no route {path}"}])
        if op is None:
            return ValidationResult(405, "Method not allowed.", [{"location": "method", "message": method}])
        result = ValidationResult(operation_id=op.operation_id, path_pattern=op.path_pattern)
        result.path_params = dict(path_params)
        hdrs = headers if isinstance(headers, Headers) else Headers(list(headers.items()))
        self._check_parameters(method, path, query, hdrs, result)
        if result.status:
            return result
        self._check_body(op, body, content_type, result)
        return result

    def _check_parameters(
        self, method: str, path: str, query: Mapping[str, Any], headers: Headers, result: ValidationResult
    ) -> None:
        outcome = self._openapi.unmarshal_apicall_request(_SpecRequest(method, path, query, headers))
        errors: list[dict[str, Any]] = []
        for exc in outcome.errors:
            if isinstance(exc, RequestBodyValidationError):
                continue  # bodies are validated by _check_body
            if isinstance(exc, SecurityValidationError):
                result.status, result.message = 401, "Unauthenticated."
                result.errors = [
                    {"location": "header", "field": "Authorization", "message": "bearer required"}
                ]
                return
            if isinstance(exc, PathNotFound | OperationNotFound | ServerNotFound):
                result.status, result.message = 404, "Not found."
                result.errors = [{"location": "path", "message": str(exc)}]
                return
            errors.extend(_describe_parameter_error(exc))
        if errors:
            result.status, result.message, result.errors = 422, "The given data was invalid.", errors
            return
        params = outcome.parameters
        if params is not None:
            result.query = dict(params.query)
            result.path_params.update(params.path or {})

    @staticmethod
    def _check_body(
        op: _Operation, body: bytes | None, content_type: str | None, result: ValidationResult
    ) -> None:
        if not body:
            if op.body_required:
                result.status, result.message = 422, "The given data was invalid."
                result.errors = [{"location": "body", "field": "", "message": "request body is required"}]
            return
        if op.media_types:
            mime = (content_type or "").split(";")[0].strip().lower()
            if mime not in op.media_types:
                result.status, result.message = 422, "The given data was invalid."
                result.errors = [
                    {
                        "location": "body",
                        "field": "",
                        "message": f"content type {mime or 'none'} not accepted",
                    }
                ]
                return
        try:
            value = json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)
        except ValueError as exc:
            result.status, result.message = 422, "The given data was invalid."
            result.errors = [{"location": "body", "field": "", "message": f"body is not JSON: {exc}"}]
            return
        result.body = value
        if op.body_validator is None:
            return
        errors = [
            {
                "location": "body",
                "field": ".".join(str(p) for p in err.absolute_path),
                "message": _short(err.message),
            }
            for err in op.body_validator.iter_errors(value)
        ]
        errors += _absurd_quantities(value)
        if errors:
            result.status, result.message = 422, "The given data was invalid."
            result.errors = errors[:100]


# KeyCRM runs on PHP, whose json_decode refuses NaN and Infinity and turns 1e309 into INF, which its
# numeric columns cannot store; its quantities are database numbers of bounded size. The spec names no
# limit, so the simulator assumes a 32-bit one: far above any stock, and an error rather than a stored
# "inf" or 1e300, which is what a real database would give.
MAX_QUANTITY = 2_147_483_647


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _absurd_quantities(value: Any) -> list[dict[str, Any]]:
    """Quantities beyond ±MAX_QUANTITY in the rows that carry them (``stocks`` of a stock write,
    ``products`` of an order)."""
    found: list[dict[str, Any]] = []
    if not isinstance(value, dict):
        return found
    for key in ("stocks", "products"):
        rows = value.get(key)
        for n, row in enumerate(rows if isinstance(rows, list) else ()):
            q = row.get("quantity") if isinstance(row, dict) else None
            if isinstance(q, int | float) and not isinstance(q, bool) and abs(q) > MAX_QUANTITY:
                found.append({"location": "body", "field": f"{key}.{n}.quantity",
                              "message": f"The {key}.{n}.quantity may not be greater than {MAX_QUANTITY}."})
    return found


def _short(message: str, limit: int = 200) -> str:
    """jsonschema quotes the whole offending value; a 10,000-row array makes a useless message."""
    half = limit // 2
    return message if len(message) <= limit else message[:half] + " ... " + message[-half:]


def _escape_pointer(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _describe_parameter_error(exc: BaseException) -> list[dict[str, Any]]:
    name = getattr(exc, "name", None)
    location = getattr(exc, "location", "query")
    messages: list[str] = []
    cause: BaseException | None = exc
    while cause is not None:
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            messages.extend(getattr(e, "message", str(e)) for e in schema_errors)
        cause = cause.__cause__
    if not messages:
        deepest: BaseException = exc
        while deepest.__cause__ is not None:
            deepest = deepest.__cause__
        messages = [str(deepest) if deepest is not exc else str(exc)]
    return [{"location": location, "field": name or "", "message": m} for m in messages]


_LOCK = threading.Lock()
_VALIDATOR: SpecValidator | None = None


def load_spec_dict(path: Path = SPEC_PATH) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as fh:
        raw = yaml.load(fh, Loader=loader)  # noqa: S506 - a safe loader (C or pure Python)
    spec = normalise_spec(raw)
    if not isinstance(spec, dict):
        raise ValueError(f"{path} is not an OpenAPI document")
    return spec


def get_validator() -> SpecValidator:
    """The process-wide validator: the spec is parsed once, on first use."""
    global _VALIDATOR
    with _LOCK:
        if _VALIDATOR is None:
            _VALIDATOR = SpecValidator(load_spec_dict())
        return _VALIDATOR
