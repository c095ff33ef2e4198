"""`python -m tasks`: one Celery worker configured from the environment (what `dispatch worker` runs)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from dispatch.settings import Settings, SettingsError
from tasks import make_celery


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker in the foreground until it is stopped."""
    parser = argparse.ArgumentParser(prog="python -m tasks", description=main.__doc__)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError:
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = make_celery(settings)
    app.set_current()
    app.worker_main(
        [
            "worker",
            f"--loglevel={settings.log_level}",
            f"--concurrency={args.concurrency}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
