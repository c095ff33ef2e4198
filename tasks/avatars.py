"""Avatar processing: orient, strip, shrink and rename an upload, then point the user at it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import redis
from bson import ObjectId
from celery import shared_task
from pymongo import ReturnDocument
from pymongo.errors import ConnectionFailure

from dispatch.core.files import write_atomically
from dispatch.core.timeutil import utcnow
from dispatch.domain import avatars
from dispatch.settings import Settings
from models.users import cache_key
from tasks import settings_of
from tasks.clients import mongo, redis_of

log = logging.getLogger("dispatch.avatars")

TRANSIENT = (ConnectionFailure, redis.ConnectionError, redis.TimeoutError)


def forget_user(settings: Settings, user_id: str) -> None:
    """Drop the user's entry from the Redis user cache (the key models.users.Users reads)."""
    redis_of(settings.effective_cache_url, cluster=settings.redis_cluster).delete(
        cache_key(settings.cache_prefix, user_id)
    )


def point_user_at(settings: Settings, db_name: str, user_id: str, url: str, queued_at: int) -> tuple[bool, str | None]:
    """Set the user's avatar unless a newer upload already did; (applied, previous avatar_url)."""
    users = mongo(settings.mongodb_url)[db_name]["users"]
    newer_exists = {"avatar_queued_at": {"$gt": queued_at}}
    before = users.find_one_and_update(
        {"_id": ObjectId(user_id), "$nor": [newer_exists]},
        {"$set": {"avatar_url": url, "avatar_queued_at": queued_at, "updated_at": utcnow()}},
        projection={"avatar_url": 1},
        return_document=ReturnDocument.BEFORE,
    )
    return before is not None, (before or {}).get("avatar_url")


def remove(path: Path | None) -> None:
    """Delete a file if it is there."""
    if path is not None:
        path.unlink(missing_ok=True)


@shared_task(
    bind=True,
    name="avatars.process",
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=8,
)
def process(self: Any, user_id: str, incoming_path: str, db_name: str, queued_at: int = 0) -> str | None:
    """Turn an upload into the user's avatar; a bad file is logged and dropped, never retried."""
    settings = settings_of(self.app)
    incoming = Path(incoming_path)
    if not avatars.is_incoming(settings.media_dir, incoming_path):
        log.error("avatar task for user %s names a file outside the incoming folder: %s", user_id, incoming_path)
        return None
    if not incoming.exists():  # a retry after the database step: only the cache is left to clear
        forget_user(settings, user_id)
        return None
    try:
        avatar = avatars.make_avatar(incoming)
    except avatars.ImageRejected as exc:
        log.warning("avatar of user %s refused (%s): %s", user_id, exc.code, incoming.name)
        remove(incoming)
        return None
    return _store(settings, user_id, incoming, db_name, queued_at, avatar)


def _store(
    settings: Settings, user_id: str, incoming: Path, db_name: str, queued_at: int, avatar: avatars.Avatar
) -> str | None:
    folder = Path(settings.media_dir) / avatars.AVATARS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / avatars.new_name(avatar.extension)
    write_atomically(target, avatar.data)
    url = avatars.URL_PREFIX + target.name
    try:
        applied, previous = point_user_at(settings, db_name, user_id, url, queued_at)
    except TRANSIENT:
        remove(target)  # the retry makes a new file from the upload, still in place
        raise
    remove(incoming)
    if not applied:  # the user is gone, or a newer upload won the race
        remove(target)
        return None
    remove(avatars.file_of(settings.media_dir, previous))
    forget_user(settings, user_id)
    return url
