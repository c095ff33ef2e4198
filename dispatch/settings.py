"""Settings: every option declared once, read from `DISPATCH_*` variables and `.env`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

PREFIX = "DISPATCH_"
DEFAULT_JWT_SECRET = "dev-secret-change-me-dev-secret-change-me"


class SettingsError(ValueError):
    """A setting has a value the server cannot run with."""


def setting(default: Any, doc: str, *, choices: tuple[str, ...] = ()) -> Any:
    """Declare one setting: its default, a one-line description, allowed values."""
    return field(default=default, metadata={"doc": doc, "choices": choices})


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one server or worker process."""

    port: int = setting(8888, "HTTP port the server listens on.")
    processes: int = setting(1, "Server processes forked to share the port (0 = one per CPU).")
    env: str = setting("development", "`development` or `production`.", choices=("development", "production"))
    bind: str = setting("127.0.0.1", "Address the server binds to.")
    mongodb_url: str = setting("mongodb://127.0.0.1:27017", "MongoDB (or MongoDB-wire) server URL.")
    mongodb_db: str = setting("dispatch", "MongoDB database name.")
    redis_url: str = setting("redis://127.0.0.1:6379/0", "Redis URL for live state, sessions and limits.")
    redis_cluster: bool = setting(
        False, "The Redis URL names one node of a Redis Cluster (the client finds the rest); needs a broker URL."
    )
    cache_url: str = setting(
        "",
        "Redis URL of the user cache (empty: the Redis URL's server, next db; "
        "in cluster mode the cluster itself, keys prefixed `cache:`).",
    )
    broker_url: str = setting(
        "", "Celery broker URL (empty: the Redis URL); a plain Redis, as Celery does not speak Redis Cluster."
    )
    jwt_secret: str = setting(DEFAULT_JWT_SECRET, "HS256 secret for access tokens; required in production.")
    access_ttl: int = setting(900, "Access token lifetime, seconds.")
    refresh_ttl: int = setting(30 * 24 * 3600, "Refresh token (session) lifetime, seconds.")
    bcrypt_rounds: int = setting(12, "bcrypt cost factor of password hashes (4 to 16).")
    rate_limits: str = setting(
        "login_ip=30/60,login_account=10/300,sms_request_phone=3/600,sms_request_ip=20/600,"
        "sms_verify_ip=20/600,password_forgot_ip=10/3600,password_forgot_account=3/3600,track_ip=300/60",
        "Rate limits as `name=count/seconds`, comma-separated; names given override the defaults.",
    )
    api_key_rate_limit: int = setting(600, "Requests per minute one API key may make (429 with Retry-After beyond).")
    public_url: str = setting("http://127.0.0.1:8888", "Public base URL used in links sent by email.")
    default_language: str = setting(
        "en", "Language of messages to customers who chose none (`en` or `ru`).", choices=("en", "ru")
    )
    message_sweep_interval: float = setting(
        10.0, "Seconds between the server's sweeps for customer messages whose task was lost (killed worker)."
    )
    require_email_verification: bool = setting(True, "Refuse log-in until the email address is verified.")
    email_backend: str = setting(
        "console", "How email leaves: `console`, `file` or `smtp`.", choices=("console", "file", "smtp")
    )
    smtp_host: str = setting("127.0.0.1", "SMTP server host.")
    smtp_port: int = setting(25, "SMTP server port.")
    smtp_user: str = setting("", "SMTP user name (empty: no login).")
    smtp_password: str = setting("", "SMTP password.")
    smtp_tls: bool = setting(False, "Use STARTTLS with the SMTP server.")
    email_from: str = setting("dispatch@localhost", "Sender address of outgoing email.")
    sms_backend: str = setting(
        "console", "How SMS leave: `console`, `file` or `http`.", choices=("console", "file", "http")
    )
    sms_http_url: str = setting("", "URL the `http` SMS backend POSTs `{to, text}` to.")
    task_visibility_timeout: int = setting(
        120, "Seconds after which a task a lost (killed) worker held is handed to another worker again."
    )
    outbox_dir: str = setting("var/outbox", "Folder the `file` email and SMS backends write to.")
    media_dir: str = setting("var/media", "Folder for uploaded media (avatars).")
    cors_origins: str = setting("", "Comma-separated origins allowed by CORS (`*` for any).")
    trusted_proxies: str = setting("", "Comma-separated proxy addresses whose X-Forwarded-For is trusted.")
    max_body_bytes: int = setting(6 * 1024 * 1024, "Largest request body accepted, bytes.")
    idle_timeout: int = setting(60, "Seconds a connection may take to send a request's headers, or its body.")
    log_level: str = setting("INFO", "Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    webhook_allow_private: str = setting(
        "",
        "Allow webhook URLs on loopback, private, link-local or reserved addresses: `true` or `false` "
        "(empty: true in development, false in production).",
        choices=("", "true", "false"),
    )
    webhook_timeout: float = setting(10.0, "Seconds a webhook receiver has to answer one delivery attempt, in all.")
    webhook_retry_base: float = setting(
        30.0, "Seconds before a failed webhook delivery's first retry; each next wait doubles (with jitter)."
    )
    webhook_max_attempts: int = setting(12, "Attempts of one webhook delivery before it is `failed`.")
    webhook_disable_after: int = setting(
        20, "Consecutive failed deliveries after which a webhook is set inactive (its managers are told)."
    )
    webhook_sweep_interval: float = setting(
        5.0, "Seconds between the server's sweeps for due webhook deliveries (retries, lost tasks)."
    )
    routing_url: str = setting(
        "", "OSRM-compatible routing server for drive distances and ETAs (empty: straight line × route factor)."
    )
    route_factor: float = setting(1.3, "Drive distance per straight-line km when no routing server answers.")
    average_speed_kmh: float = setting(40.0, "Average speed of a tow truck (km/h) for ETAs without a routing server.")
    eta_interval: float = setting(30.0, "Seconds between ETA refreshes of an order (sooner after 200 m of movement).")
    arrival_radius_m: float = setting(
        150.0, "Metres from the pickup (or drop-off) at which `order.arriving` is raised."
    )

    map_tile_url: str = setting(
        "",
        "XYZ raster tile URL template of the pages' maps, e.g. `https://tile.example.org/{z}/{x}/{y}.png` "
        "(`{s}` allowed in the host; empty: the offline drawing, no streets).",
    )
    map_attribution: str = setting("", "Attribution text shown on the map with the tiles (plain text).")

    @property
    def effective_broker_url(self) -> str:
        """The Celery broker: its own URL when set, else the Redis URL."""
        return self.broker_url or self.redis_url

    @property
    def effective_cache_url(self) -> str:
        """The user cache: its own URL when set, else the next logical db of the Redis server
        (a cluster has only db 0: there the cache is the cluster itself, its keys prefixed)."""
        if self.cache_url:
            return self.cache_url
        if self.redis_cluster:
            return self.redis_url
        parts = urlsplit(self.redis_url)
        db = int(parts.path.strip("/") or 0) + 1
        return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))

    @property
    def cache_prefix(self) -> str:
        """What the user cache's keys start with: `cache:` on a Redis Cluster (one db for everything), else nothing."""
        return "cache:" if self.redis_cluster else ""

    @property
    def rate_limit_table(self) -> dict[str, tuple[int, int]]:
        """Each limit's (count, seconds), defaults merged with the configured value."""
        table = _parse_limits(str(Settings.__dataclass_fields__["rate_limits"].default))
        table.update(_parse_limits(self.rate_limits))
        return table

    @property
    def webhooks_may_reach_private(self) -> bool:
        """Whether webhook URLs may point at loopback/private addresses (development's default)."""
        if self.webhook_allow_private:
            return self.webhook_allow_private == "true"
        return self.env == "development"

    @property
    def cors_origin_list(self) -> list[str]:
        """Allowed CORS origins as a list."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, env_file: str | None = ".env") -> Settings:
        """Read settings from the environment, over an optional `.env` file."""
        values: dict[str, str] = {}
        if env_file and Path(env_file).is_file():
            from dotenv import dotenv_values

            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        raw = {f.name: values[PREFIX + f.name.upper()] for f in fields(cls) if PREFIX + f.name.upper() in values}
        return cls.from_mapping(raw)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Settings:
        """Build settings from field names to raw values, converting and validating each."""
        known = {f.name: f for f in fields(cls)}
        unknown = set(raw) - set(known)
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
        converted = {name: _convert(known[name], value) for name, value in raw.items()}
        settings = cls(**converted)
        settings.validate()
        return settings

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed, validated again."""
        settings = dataclasses.replace(self, **changes)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse values the server cannot run with, naming the variable."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["choices"] and value not in f.metadata["choices"]:
                _fail(f.name, value, "one of " + ", ".join(f.metadata["choices"]))
        if not 0 < self.port < 65536:
            _fail("port", self.port, "a port number between 1 and 65535")
        if self.processes < 0:
            _fail("processes", self.processes, "0 or more")
        for name in (
            "access_ttl",
            "refresh_ttl",
            "max_body_bytes",
            "task_visibility_timeout",
            "idle_timeout",
            "api_key_rate_limit",
            "webhook_timeout",
            "webhook_retry_base",
            "webhook_max_attempts",
            "webhook_disable_after",
            "webhook_sweep_interval",
            "route_factor",
            "average_speed_kmh",
            "eta_interval",
            "arrival_radius_m",
            "message_sweep_interval",
        ):
            if getattr(self, name) <= 0:
                _fail(name, getattr(self, name), "a positive number")
        _check_url("mongodb_url", self.mongodb_url, ("mongodb", "mongodb+srv"))
        _check_url("redis_url", self.redis_url, ("redis", "rediss", "unix"))
        if self.broker_url:
            _check_url("broker_url", self.broker_url, ("redis", "rediss"))
        _check_url("public_url", self.public_url, ("http", "https"))
        if self.routing_url:
            _check_url("routing_url", self.routing_url, ("http", "https"))
        if self.env == "production" and (self.jwt_secret == DEFAULT_JWT_SECRET or len(self.jwt_secret) < 32):
            _fail("jwt_secret", "<hidden>", "a secret of at least 32 characters of your own in production")
        if not 4 <= self.bcrypt_rounds <= 16:
            _fail("bcrypt_rounds", self.bcrypt_rounds, "a number from 4 to 16")
        if self.cache_url:
            _check_url("cache_url", self.cache_url, ("redis", "rediss", "unix"))
        if self.redis_cluster:
            self._validate_cluster()
        try:
            _parse_limits(self.rate_limits)
        except ValueError:
            _fail("rate_limits", self.rate_limits, "entries like login_ip=30/60")
        if self.map_tile_url:
            _check_url("map_tile_url", self.map_tile_url, ("http", "https"))
            if not all(part in self.map_tile_url for part in ("{z}", "{x}", "{y}")):
                _fail("map_tile_url", self.map_tile_url, "a template with {z}, {x} and {y}")
        if self.sms_backend == "http" and not self.sms_http_url:
            _fail("sms_http_url", "", "a URL when DISPATCH_SMS_BACKEND=http")

    def _validate_cluster(self) -> None:
        """A Redis Cluster has only db 0 and no unix sockets, and Celery's broker cannot be one."""
        for name in ("redis_url", "cache_url"):
            url = getattr(self, name)
            if url and (urlsplit(url).scheme == "unix" or urlsplit(url).path.strip("/") not in ("", "0")):
                _fail(name, url, "a redis:// URL of a cluster node (db 0) when DISPATCH_REDIS_CLUSTER=true")
        if not self.broker_url:
            _fail("broker_url", "", "a plain Redis URL for Celery when DISPATCH_REDIS_CLUSTER=true")


def _convert(f: dataclasses.Field, value: Any) -> Any:
    """Turn one raw (usually string) value into the field's type."""
    kind = type(f.default)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    text = str(value).strip()
    if kind is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        _fail(f.name, value, "true or false")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            _fail(f.name, value, "a whole number")
    if kind is float:
        try:
            return float(text)
        except ValueError:
            _fail(f.name, value, "a number")
    return text


def _parse_limits(text: str) -> dict[str, tuple[int, int]]:
    table = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        name, _, rate = entry.partition("=")
        count, _, seconds = rate.partition("/")
        if not name.strip() or int(count) < 1 or int(seconds) < 1:
            raise ValueError(entry)
        table[name.strip()] = (int(count), int(seconds))
    return table


def _check_url(name: str, value: str, schemes: tuple[str, ...]) -> None:
    scheme = urlsplit(value).scheme
    if scheme not in schemes:
        _fail(name, value, "a URL starting with " + " or ".join(s + "://" for s in schemes))


def _fail(name: str, value: Any, expected: str) -> None:
    raise SettingsError(f"{PREFIX}{name.upper()}={value!r} is not valid: expected {expected}")


def settings_table() -> str:
    """The settings as a Markdown table, for the README."""
    rows = ["| variable | default | description |", "|---|---|---|"]
    for f in fields(Settings):
        default = f.default if f.name != "jwt_secret" else "(development value; required in production)"
        if isinstance(default, bool):
            default = str(default).lower()
        rows.append(f"| `{PREFIX}{f.name.upper()}` | `{default}` | {f.metadata['doc']} |")
    return "\n".join(rows)


def update_readme(path: str = "README.md") -> None:
    """Rewrite the settings table of the README between its markers."""
    text = Path(path).read_text()
    start, end = "<!-- settings-table -->", "<!-- /settings-table -->"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    Path(path).write_text(f"{head}{start}\n{settings_table()}\n{end}{tail}")


if __name__ == "__main__":
    update_readme()  # `python -m dispatch.settings` refreshes the README's table
