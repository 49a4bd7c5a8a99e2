"""`docker compose config` semantics without Docker: the Compose specification's interpolation
(``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``, ``${VAR:+alt}``,
``${VAR+alt}``, nesting, ``$$``) applied to docker-compose.yml, as Compose does, over the whole file."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Missing(Exception):
    pass


def _braced(text: str, i: int, env: dict[str, str], errors: list[str]) -> tuple[str, int]:
    """Expand ``${…}`` starting at text[i] == '$', i+1 == '{'; returns (value, index after '}')."""
    name = _NAME.match(text, i + 2)
    assert name, f"bad variable at {text[i:i + 20]!r}"
    j = name.end()
    var = name.group(0)
    op = ""
    for candidate in (":-", ":?", ":+", "-", "?", "+"):
        if text.startswith(candidate, j):
            op = candidate
            j += len(candidate)
            break
    # the operand runs to the matching '}', and may itself hold ${…}
    operand, depth, k = [], 0, j
    while True:
        assert k < len(text), f"unclosed ${{ in {text!r}"
        c = text[k]
        if c == "$" and text.startswith("${", k):
            value, k = _braced(text, k, env, errors)
            operand.append(value)
            continue
        if c == "}" and depth == 0:
            break
        operand.append(c)
        k += 1
    arg = "".join(operand)
    value = env.get(var)
    unset, empty = value is None, not value
    if op == "":
        out = value or ""
    elif op in (":-", "-"):
        out = arg if (empty if op == ":-" else unset) else value  # type: ignore[assignment]
    elif op in (":?", "?"):
        if empty if op == ":?" else unset:
            errors.append(f"required variable {var} is missing a value: {arg}")
            out = ""
        else:
            out = value  # type: ignore[assignment]
    else:  # ":+" / "+"
        out = "" if (empty if op == ":+" else unset) else arg
    return out, k + 1


def interpolate_text(text: str, env: dict[str, str], errors: list[str]) -> str:
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            value, i = _braced(text, i, env, errors)
            out.append(value)
        elif text[i] == "$" and _NAME.match(text, i + 1):
            m = _NAME.match(text, i + 1)
            out.append(env.get(m.group(0), ""))
            i = m.end()
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def interpolate(node, env, errors):
    if isinstance(node, str):
        return interpolate_text(node, env, errors)
    if isinstance(node, list):
        return [interpolate(n, env, errors) for n in node]
    if isinstance(node, dict):
        return {k: interpolate(v, env, errors) for k, v in node.items()}
    return node


def compose_config(env: dict[str, str], profiles: tuple[str, ...] = ()) -> dict:
    """What `docker compose [--profile …] config` would print, or Missing naming every required key."""
    errors: list[str] = []
    model = interpolate(yaml.safe_load((ROOT / "docker-compose.yml").read_text()), env, errors)
    if errors:
        raise Missing("\n".join(errors))
    model["services"] = {n: s for n, s in model["services"].items()
                         if not s.get("profiles") or set(s["profiles"]) & set(profiles)}
    return model


def env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


REQUIRED = {"BRIDGE_SHARED_SECRET", "KEYCRM_API_KEY", "KEYCRM_WRITE_WAREHOUSE_ID", "KEYCRM_WEBHOOK_TOKEN", "WOO_URL",
            "WOO_CONSUMER_KEY", "WOO_CONSUMER_SECRET", "PUBLIC_HOSTNAME"}


def published(model: dict) -> list[tuple[str, str]]:
    """(service, host address) of every published port; Compose binds a bare "HOST:CONTAINER" to 0.0.0.0."""
    out = []
    for name, svc in model["services"].items():
        for port in svc.get("ports", []):
            parts = str(port).split(":")
            out.append((name, parts[0] if len(parts) == 3 else "0.0.0.0"))
    return out


def test_the_parser_follows_the_specification():
    errors: list[str] = []
    env = {"SET": "x", "EMPTY": ""}
    cases = {"${SET}": "x", "${NOPE:-d}": "d", "${EMPTY:-d}": "d", "${EMPTY-d}": "", "${NOPE-d}": "d",
             "${SET:+alt}": "alt", "${EMPTY:+alt}": "", "${EMPTY+alt}": "alt", "$$SET": "$SET", "a$SET-b": "ax-b",
             "${NOPE:-${SET}}": "x", "${NOPE:-${NOPE2:-deep}}": "deep", "${SET:?never}": "x"}
    for text, want in cases.items():
        assert interpolate_text(text, env, errors) == want, text
    assert errors == []
    interpolate_text("${EMPTY:?say why}", env, errors)
    interpolate_text("${EMPTY?fine}", env, errors)
    assert errors == ["required variable EMPTY is missing a value: say why"]


def test_without_env_the_default_profile_refuses_and_names_every_missing_key():
    with pytest.raises(Missing) as refused:
        compose_config({})
    named = set(re.findall(r"required variable (\w+)", str(refused.value)))
    assert named == REQUIRED
    for line in str(refused.value).splitlines():
        assert "see .env.example" in line, line  # each message says where the key is explained


def test_the_demo_profile_needs_no_env_of_yours():
    demo = compose_config(env_file(ROOT / "docker" / "demo.env"), ("demo",))
    assert {"sidecar", "worker", "proxy", "wordpress", "web", "db", "keycrm-simulator", "wp-init"} <= set(demo["services"])
    assert demo["services"]["sidecar"]["environment"]["KEYCRM_BASE_URL"] == "http://keycrm-simulator:8089/v1"
    assert all(host == "127.0.0.1" for _, host in published(demo)), published(demo)
    # generated passwords, not written ones
    assert demo["services"]["db"]["environment"]["MARIADB_PASSWORD_FILE"].startswith("/secrets/")
    assert "WP_ADMIN_PASSWORD" not in demo["services"]["wp-init"]["environment"]
    assert demo["services"]["wp-init"]["environment"]["WOOCOMMERCE_VERSION"] == "11.0.1"


def test_a_filled_env_starts_the_sidecar_alone_and_only_the_proxy_is_public():
    filled = {k: f"value-of-{k}" for k in REQUIRED}
    model = compose_config(filled)
    assert set(model["services"]) == {"sidecar", "worker", "proxy"}
    public = [name for name, host in published(model) if host != "127.0.0.1"]
    assert set(public) == {"proxy"}, published(model)
    assert model["services"]["sidecar"]["environment"]["WOO_URL"] == "value-of-WOO_URL"


def test_env_example_lists_every_key_with_a_comment():
    text = (ROOT / ".env.example").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", compose))
    lines = text.splitlines()
    listed = {}
    for n, line in enumerate(lines):
        m = re.match(r"([A-Z_][A-Z0-9_]*)=", line)
        if m:
            listed[m.group(1)] = lines[n - 1]
    assert used <= set(listed), used - set(listed)
    for key, above in listed.items():
        assert above.startswith("#"), f"{key} has no comment above it"
    assert set(env_file(ROOT / "docker" / "demo.env")) <= used


def test_images_are_pinned_and_python_dependencies_are_constrained():
    model = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, svc in model["services"].items():
        image = svc.get("image", "")
        tag = image.rpartition(":")[2]
        assert re.search(r"\d+\.\d+", tag), f"{name}: image {image!r} is not pinned to a version"
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-", (ROOT / "Dockerfile").read_text(), re.M)
    assert "-c constraints.txt" in (ROOT / "Dockerfile").read_text()
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()
    pins = {line.split("==")[0].lower().replace("_", "-") for line in (ROOT / "constraints.txt").read_text().splitlines()
            if "==" in line}
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    for requirement in wanted:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in constraints.txt"
    ignored = (ROOT / ".dockerignore").read_text()
    assert "*" in ignored.splitlines(), "everything is left out unless let in"
    assert {"!pyproject.toml", "!sidecar/", "!constraints.txt"} <= set(ignored.splitlines())
