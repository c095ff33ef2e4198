"""The `dispatch` command as a real process."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatch import cli
from dispatch.tools import devservices
from dispatch.tools.devservices import VENV_BIN
from tests.support.processes import env_of, wait_ready


def test_openapi_command_prints_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    result = subprocess.run([str(VENV_BIN / "dispatch"), "openapi"], capture_output=True, text=True, check=True)
    spec = json.loads(result.stdout)
    assert spec["openapi"].startswith("3.") and "/readyz" in spec["paths"]
    # The console script is proven above; the YAML flavour runs the same entry point in-process.
    assert cli.main(["openapi", "--yaml"]) == 0
    as_yaml = capsys.readouterr().out
    assert as_yaml.startswith("paths:") or "openapi: 3" in as_yaml
    assert yaml.load(as_yaml, Loader=yaml.CSafeLoader) == spec, "the same document in either format"


def test_serve_answers_and_stops_cleanly_on_sigterm(settings: Any, tmp_path: Path) -> None:
    port = devservices.free_port()
    with (
        open(tmp_path / "serve.log", "wb") as log,
        subprocess.Popen(
            [str(VENV_BIN / "dispatch"), "serve", "--port", str(port)],
            env=env_of(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        ) as process,
    ):
        try:
            assert wait_ready(port) == {"status": "ok", "checks": {"mongodb": "ok", "redis": "ok"}}
            process.send_signal(signal.SIGTERM)
            assert process.wait(15) == 0
        finally:
            if process.poll() is None:
                process.kill()
