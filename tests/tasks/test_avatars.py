"""The avatar task and its Pillow work, run in-process (eagerly) against the real MongoDB and Redis."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from bson import ObjectId
from PIL import Image, ImageCms, PngImagePlugin
from pymongo.errors import ConnectionFailure

from dispatch.domain import avatars
from dispatch.settings import Settings
from dispatch.tools import devservices
from tasks import make_celery
from tasks.avatars import _store
from tasks.clients import close_clients

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


@pytest.fixture
def media_settings(settings: Settings, tmp_path: Path) -> Settings:
    """The test's settings (its database, as `sync_db` sees it) with a private media folder."""
    return settings.replace(media_dir=str(tmp_path / "media"))


@pytest.fixture
def run_task(media_settings: Settings) -> Iterator[Any]:
    """Run `avatars.process` eagerly in this process with the test's settings."""
    celery = make_celery(media_settings)
    task = celery.tasks["avatars.process"]

    def run(*args: Any) -> Any:
        return task.apply(args=args, throw=True).get()

    yield run
    celery.close()
    close_clients()


@pytest.fixture
def user_id(sync_db: Any) -> str:
    return str(sync_db["users"].insert_one({"username": "u", "avatar_url": None}).inserted_id)


@pytest.fixture
def cache(media_settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(media_settings.effective_cache_url)
    yield client
    client.close()


def incoming(settings: Settings, data: bytes) -> str:
    return avatars.save_incoming(settings.media_dir, data)


def photo() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90° counter-clockwise to display
    return encode(
        Image.new("RGB", (640, 480), (90, 90, 90)), "JPEG", exif=exif, icc_profile=ICC, comment=b"secret comment"
    )


def test_task_sets_the_avatar_and_clears_the_user_cache(
    run_task: Any, media_settings: Settings, user_id: str, sync_db: Any, cache: redis.Redis
) -> None:
    path = incoming(media_settings, photo())
    cache.set(f"user:{user_id}", b"stale copy")
    url = run_task(user_id, path, media_settings.mongodb_db, time.time_ns())
    assert url is not None

    doc = sync_db["users"].find_one({"_id": ObjectId(user_id)})
    assert doc["avatar_url"] == url and doc["updated_at"] is not None
    assert cache.get(f"user:{user_id}") is None
    assert not Path(path).exists(), "the upload is removed once processed"
    stored = Path(media_settings.media_dir) / "avatars" / url.rsplit("/", 1)[1]
    with Image.open(stored) as image:
        assert image.size == (150, 200), "rotated to portrait and shrunk to fit 200×200"
        assert "icc_profile" not in image.info and "comment" not in image.info and not image.getexif()


@pytest.mark.parametrize(
    "data",
    [b"GIF89a but not really", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, b""],
    ids=["fake-gif", "broken-png", "empty"],
)
def test_a_bad_file_is_dropped_without_crash_or_retry(
    run_task: Any, media_settings: Settings, user_id: str, sync_db: Any, data: bytes
) -> None:
    path = incoming(media_settings, data)
    assert run_task(user_id, path, media_settings.mongodb_db, time.time_ns()) is None
    assert not Path(path).exists()
    assert sync_db["users"].find_one({"_id": ObjectId(user_id)})["avatar_url"] is None


def test_a_file_outside_the_incoming_folder_is_not_touched(
    run_task: Any, media_settings: Settings, user_id: str, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "important.jpg"
    elsewhere.write_bytes(photo())
    assert run_task(user_id, str(elsewhere), media_settings.mongodb_db, time.time_ns()) is None
    assert elsewhere.exists()


def test_an_older_upload_finishing_last_does_not_win(
    run_task: Any, media_settings: Settings, user_id: str, sync_db: Any
) -> None:
    older_at = time.time_ns()
    newer = run_task(user_id, incoming(media_settings, photo()), media_settings.mongodb_db, older_at + 1)
    assert run_task(user_id, incoming(media_settings, photo()), media_settings.mongodb_db, older_at) is None
    assert sync_db["users"].find_one({"_id": ObjectId(user_id)})["avatar_url"] == newer
    assert [p.name for p in (Path(media_settings.media_dir) / "avatars").iterdir()] == [newer.rsplit("/", 1)[1]]


def test_database_outage_keeps_the_upload_for_the_retry(services: Any, tmp_path: Path) -> None:
    settings = services.settings(
        media_dir=str(tmp_path / "media"), mongodb_url=f"mongodb://127.0.0.1:{devservices.free_port()}"
    )
    path = Path(incoming(settings, photo()))
    with pytest.raises(ConnectionFailure):
        _store(settings, str(ObjectId()), path, "nowhere", time.time_ns(), avatars.make_avatar(path))
    close_clients()
    assert path.exists(), "the retry still finds the upload"
    assert not list((Path(settings.media_dir) / "avatars").iterdir()), "no orphan avatar file"


@pytest.mark.parametrize(
    ("source", "fmt", "extension", "mode"),
    [
        (Image.new("CMYK", (400, 300), (0, 80, 80, 0)), "JPEG", "jpg", "RGB"),
        (Image.new("L", (50, 80), 128), "PNG", "jpg", "RGB"),
        (Image.new("RGB", (500, 500), (1, 2, 3)), "WEBP", "jpg", "RGB"),
        (Image.new("RGBA", (500, 250), (1, 2, 3, 0)), "WEBP", "png", "RGBA"),
        (Image.new("P", (300, 300), 0), "GIF", "png", "RGBA"),
    ],
    ids=["cmyk-jpeg", "grey-png", "webp", "webp-alpha", "gif-transparent"],
)
def test_formats_become_small_clean_jpeg_or_png(
    tmp_path: Path, source: Image.Image, fmt: str, extension: str, mode: str
) -> None:
    options: dict[str, Any] = {"transparency": 0} if fmt == "GIF" else {}
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Author", "somebody private")
        options["pnginfo"] = info
    path = tmp_path / "upload"
    path.write_bytes(encode(source, fmt, **options))
    avatar = avatars.make_avatar(path)
    assert avatar.extension == extension
    image = Image.open(io.BytesIO(avatar.data))
    assert image.mode == mode
    assert max(image.size) <= 200 and image.size[0] * source.size[1] - image.size[1] * source.size[0] < max(source.size)
    assert b"somebody private" not in avatar.data


def test_check_upload_accepts_only_allowed_formats() -> None:
    assert avatars.check_upload(encode(Image.new("RGB", (10, 10)), "PNG")) == "PNG"
    with pytest.raises(avatars.ImageRejected):
        avatars.check_upload(encode(Image.new("RGB", (10, 10)), "BMP"))
    with pytest.raises(avatars.ImageRejected):
        avatars.check_upload(encode(Image.new("RGB", (10, 10)), "TIFF"))
