"""Settings: read from the environment and .env, validated with clear messages."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dispatch.settings import Settings, SettingsError, settings_table

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_match_the_spec() -> None:
    settings = Settings.from_env({}, env_file=None)
    assert settings.port == 8888 and settings.processes == 1
    assert settings.access_ttl == 900 and settings.refresh_ttl == 30 * 24 * 3600
    assert settings.require_email_verification is True
    assert settings.email_backend == "console"


def test_environment_overrides_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("DISPATCH_PORT=9000\nDISPATCH_MONGODB_DB=fromfile\n")
    settings = Settings.from_env({"DISPATCH_PORT": "9100", "DISPATCH_SMTP_TLS": "yes"}, env_file=str(dotenv))
    assert settings.port == 9100 and settings.mongodb_db == "fromfile" and settings.smtp_tls is True


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DISPATCH_PORT", "eighty", "DISPATCH_PORT='eighty' is not valid: expected a whole number"),
        ("DISPATCH_PORT", "70000", "between 1 and 65535"),
        ("DISPATCH_EMAIL_BACKEND", "pigeon", "one of console, file, smtp"),
        ("DISPATCH_REDIS_URL", "localhost:6379", "redis://"),
        ("DISPATCH_REQUIRE_EMAIL_VERIFICATION", "maybe", "true or false"),
        ("DISPATCH_MAP_TILE_URL", "tiles.example.org/{z}/{x}/{y}.png", "http://"),
        ("DISPATCH_MAP_TILE_URL", "https://tiles.example.org/tile.png", "{z}, {x} and {y}"),
    ],
)
def test_bad_values_are_refused_by_name(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(expected)):
        Settings.from_env({name: value}, env_file=None)


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(SettingsError, match="DISPATCH_JWT_SECRET"):
        Settings.from_env({"DISPATCH_ENV": "production"}, env_file=None)
    ok = Settings.from_env({"DISPATCH_ENV": "production", "DISPATCH_JWT_SECRET": "s" * 40}, env_file=None)
    assert ok.env == "production"


def test_cli_reports_a_bad_setting_clearly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dispatch.cli", "openapi"],
        capture_output=True,
        text=True,
        env={"DISPATCH_PORT": "x", "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "configuration error: DISPATCH_PORT='x'" in result.stderr
    assert "Traceback" not in result.stderr


def test_readme_settings_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    assert settings_table() in readme, "regenerate the README's settings table from dispatch.settings"


def test_webhooks_reach_private_addresses_in_development_only_unless_told() -> None:
    production = {"DISPATCH_ENV": "production", "DISPATCH_JWT_SECRET": "s" * 40}
    assert Settings.from_env({}, env_file=None).webhooks_may_reach_private
    assert not Settings.from_env(production, env_file=None).webhooks_may_reach_private
    told = {**production, "DISPATCH_WEBHOOK_ALLOW_PRIVATE": "true"}
    assert Settings.from_env(told, env_file=None).webhooks_may_reach_private
    assert not Settings.from_env({"DISPATCH_WEBHOOK_ALLOW_PRIVATE": "false"}, env_file=None).webhooks_may_reach_private
    assert Settings.from_env({"DISPATCH_WEBHOOK_RETRY_BASE": "0.5"}, env_file=None).webhook_retry_base == 0.5
    with pytest.raises(SettingsError, match="DISPATCH_WEBHOOK_TIMEOUT"):
        Settings.from_env({"DISPATCH_WEBHOOK_TIMEOUT": "soon"}, env_file=None)
    with pytest.raises(SettingsError, match="DISPATCH_WEBHOOK_ALLOW_PRIVATE"):
        Settings.from_env({"DISPATCH_WEBHOOK_ALLOW_PRIVATE": "maybe"}, env_file=None)


def test_the_pages_policy_allows_exactly_the_tile_servers_origin() -> None:
    from handlers.console import page_csp

    plain = Settings.from_env({}, env_file=None)
    assert "img-src 'self' data:;" in page_csp(plain)
    osm = plain.replace(map_tile_url="https://{s}.tile.example.org/{z}/{x}/{y}.png")
    assert "img-src 'self' data: https://*.tile.example.org;" in page_csp(osm)
    local = plain.replace(map_tile_url="http://127.0.0.1:8080/tiles/{z}/{x}/{y}.png?key=k")
    assert "img-src 'self' data: http://127.0.0.1:8080;" in page_csp(local)


def test_a_redis_cluster_needs_a_plain_broker_and_db_0_and_keeps_the_cache_under_a_prefix() -> None:
    node = "redis://10.0.0.5:7000"
    with pytest.raises(SettingsError, match="DISPATCH_BROKER_URL"):
        Settings.from_env({"DISPATCH_REDIS_CLUSTER": "true", "DISPATCH_REDIS_URL": node}, env_file=None)
    with pytest.raises(SettingsError, match="DISPATCH_REDIS_URL"):
        Settings.from_mapping({"redis_cluster": True, "redis_url": node + "/1", "broker_url": "redis://broker/0"})
    cluster = Settings.from_mapping({"redis_cluster": True, "redis_url": node, "broker_url": "redis://broker/0"})
    assert (cluster.effective_cache_url, cluster.cache_prefix) == (node, "cache:")
    assert cluster.effective_broker_url == "redis://broker/0"
    single = Settings.from_mapping({"redis_url": "redis://127.0.0.1:6379/0"})
    assert (single.effective_cache_url, single.cache_prefix) == ("redis://127.0.0.1:6379/1", "")
