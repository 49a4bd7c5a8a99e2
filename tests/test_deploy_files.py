"""The container path: the compose file is valid Compose and runs the same commands as the native path."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import check_jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_matches_the_compose_specification_schema(capsys):
    schema = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
    meta = json.loads(schema.read_text())
    digest = hashlib.sha256(schema.read_bytes()).hexdigest()[:12]
    # Name the schema we validated against, so a report says which Compose specification it was.
    with capsys.disabled():
        print(f"\ncompose schema: {meta.get('$id')} ({meta.get('title')}), check-jsonschema "
              f"{check_jsonschema.__version__ if hasattr(check_jsonschema, '__version__') else ''} sha256 {digest}")
    r = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                        str(ROOT / "docker-compose.yml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_broken_compose_file_is_rejected(tmp_path):
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  x:\n    image: 5\n    ports: {bad: true}\n")
    r = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                        str(bad)], capture_output=True, text=True)
    assert r.returncode != 0


def test_containers_run_the_native_commands():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = {name: svc.get("command") for name, svc in compose["services"].items() if svc.get("build")}
    assert commands["sidecar"] == ["keycrm-bridge", "web"]
    assert commands["worker"] == ["keycrm-bridge", "worker"]
    assert commands["keycrm-simulator"][:2] == ["keycrm-bridge", "simulator"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["keycrm-bridge", "run"' in dockerfile
    from keycrm_bridge.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"run", "web", "worker", "simulator", "status"} <= set(sub.choices)
