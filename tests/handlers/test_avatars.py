"""Avatar uploads end to end: checks at the door, the real worker's processing, the served file."""

from __future__ import annotations

import asyncio
import io
import re
import uuid
from typing import Any

import pytest
from PIL import Image

from dispatch.domain.avatars import MAX_UPLOAD
from tests.support.factories import login, make_user
from tests.support.helpers import Api, Response

AVATAR = "/api/v1/users/me/avatar"
NAME = re.compile(r"^[a-zA-Z0-9]+\.(jpg|png)$")
RED, BLUE = (220, 20, 20), (20, 20, 220)


# --- images the tests make ------------------------------------------------------------
def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def camera_jpeg() -> bytes:
    """A 1200×800 photo, left half red, right half blue, to be shown rotated 90° (EXIF Orientation 6)."""
    image = Image.new("RGB", (1200, 800), BLUE)
    image.paste(RED, (0, 0, 600, 800))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Model X"  # Model
    exif[0x8825] = {1: "N", 2: (55.0, 45.0, 21.0), 3: "E", 4: (37.0, 37.0, 4.0)}  # GPS position
    return encode(image, "JPEG", exif=exif, quality=92)


def transparent_png() -> bytes:
    """300×300, an opaque green square on a fully transparent background."""
    image = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    image.paste((10, 180, 10, 255), (75, 75, 225, 225))
    return encode(image, "PNG")


def bomb_png(width: int, height: int) -> bytes:
    """A tiny file (a few KB) that claims a huge 1-bit image."""
    return encode(Image.new("1", (width, height)), "PNG", optimize=True)


def multipart(
    data: bytes, filename: str = "avatar.jpg", content_type: str = "image/jpeg", field: str = "avatar"
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body with one file part."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


# --- helpers ----------------------------------------------------------------------------
@pytest.fixture
def signed_in(app: Any, api: Api, io_loop: Any) -> dict[str, Any]:
    """A client account whose token the api client sends."""
    user = io_loop.run_sync(lambda: make_user(app, "BASE"))
    api.token = io_loop.run_sync(lambda: login(app, user))
    return user


async def upload_multipart(api: Api, data: bytes, **kw: Any) -> Response:
    body, headers = multipart(data, **kw)
    return await api.put(AVATAR, body=body, headers=headers)


async def upload_raw(api: Api, data: bytes, content_type: str) -> Response:
    return await api.put(AVATAR, body=data, headers={"Content-Type": content_type})


async def wait_for_avatar(api: Api, previous: str | None = None, timeout: float = 30) -> str:
    """The caller's avatar_url once the worker has set it (to something other than `previous`)."""
    for _ in range(int(timeout * 10)):
        url = (await api.get("/api/v1/users/me")).json["avatar_url"]
        if url and url != previous:
            return url
        await asyncio.sleep(0.1)
    raise AssertionError(f"avatar_url was not set within {timeout}s")


async def fetch_image(api: Api, url: str) -> tuple[Response, Image.Image]:
    answer = await api.get(url)
    assert answer.status == 200, answer.body[:200]
    return answer, Image.open(io.BytesIO(answer.body))


def incoming_files(services: Any) -> set[str]:
    folder = services.media_dir / "incoming"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


# --- the happy paths ----------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_photo_is_oriented_stripped_shrunk_and_served(api: Api, signed_in: Any, services: Any) -> None:
    answer = await upload_multipart(api, camera_jpeg())
    assert answer.status == 202
    assert answer.json == {"status": "processing"}

    url = await wait_for_avatar(api)
    assert url.startswith("/media/avatars/")
    assert NAME.match(url.rsplit("/", 1)[1]), url
    served, image = await fetch_image(api, url)
    assert served.headers["Content-Type"] == "image/jpeg"
    assert "max-age=" in served.headers["Cache-Control"]
    assert image.format == "JPEG"
    assert image.width <= 200 and image.height <= 200
    assert image.height > image.width, "the EXIF orientation was applied (portrait)"
    rgb = image.convert("RGB")
    top, bottom = rgb.getpixel((image.width // 2, 10)), rgb.getpixel((image.width // 2, image.height - 10))
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0], "rotated clockwise: the red left is on top"
    assert len(image.getexif()) == 0 and "exif" not in image.info, "no EXIF (GPS, make, model) is left"
    assert b"PhoneMaker" not in served.body


@pytest.mark.gen_test(timeout=60)
async def test_raw_png_keeps_its_transparency(api: Api, signed_in: Any) -> None:
    answer = await upload_raw(api, transparent_png(), "image/png")
    assert answer.status == 202

    url = await wait_for_avatar(api)
    assert NAME.match(url.rsplit("/", 1)[1]) and url.endswith(".png")
    served, image = await fetch_image(api, url)
    assert served.headers["Content-Type"] == "image/png"
    assert image.mode == "RGBA"
    assert image.size == (200, 200)
    assert image.getpixel((2, 2))[3] == 0, "the background stays transparent"
    assert image.getpixel((100, 100))[3] == 255


@pytest.mark.gen_test(timeout=90)
async def test_a_second_upload_replaces_the_first(api: Api, signed_in: Any, services: Any) -> None:
    assert (await upload_raw(api, camera_jpeg(), "image/jpeg")).status == 202
    first = await wait_for_avatar(api)
    first_file = services.media_dir / "avatars" / first.rsplit("/", 1)[1]
    assert first_file.exists()

    assert (await upload_multipart(api, transparent_png(), filename="me.png", content_type="image/png")).status == 202
    second = await wait_for_avatar(api, previous=first)
    assert second != first and second.endswith(".png")
    assert not first_file.exists(), "the old file is removed"
    gone = await api.get(first)
    assert gone.status == 404 and gone.error_code == "not_found"
    await fetch_image(api, second)


# --- refusals at the door -------------------------------------------------------------------
@pytest.mark.gen_test
async def test_text_file_named_png_is_422(api: Api, signed_in: Any, services: Any) -> None:
    before = incoming_files(services)
    answer = await upload_multipart(
        api, b"just some text, not a picture\n" * 20, filename="avatar.png", content_type="image/png"
    )
    assert answer.status == 422
    assert answer.error_code == "invalid_image"
    assert answer.json["error"]["details"]["avatar"]
    assert incoming_files(services) == before, "nothing is queued"


@pytest.mark.gen_test
async def test_truncated_jpeg_is_422(api: Api, signed_in: Any) -> None:
    data = camera_jpeg()
    answer = await upload_raw(api, data[: len(data) // 2], "image/jpeg")
    assert answer.status == 422
    assert answer.error_code == "invalid_image"


@pytest.mark.parametrize("size", [(10000, 10000), (8000, 6000)], ids=["100mp", "48mp"])
@pytest.mark.gen_test
async def test_decompression_bomb_is_refused_before_the_worker(
    api: Api, signed_in: Any, services: Any, size: tuple[int, int]
) -> None:
    data = bomb_png(*size)
    assert len(data) < 64 * 1024, "a tiny file claiming a huge picture"
    before = incoming_files(services)
    answer = await upload_raw(api, data, "image/png")
    assert answer.status == 422
    assert answer.error_code == "image_too_large"
    assert "avatar" in answer.json["error"]["details"]
    assert incoming_files(services) == before, "nothing is handed to the worker"
    assert (await api.get("/api/v1/users/me")).json["avatar_url"] is None


@pytest.mark.gen_test
async def test_body_over_the_limit_is_413(api: Api, signed_in: Any) -> None:
    answer = await upload_raw(api, b"\xff" * (MAX_UPLOAD + 256 * 1024), "image/jpeg")
    assert answer.status == 413
    assert answer.error_code == "body_too_large"


@pytest.mark.gen_test
async def test_image_over_5_mb_inside_the_multipart_allowance_is_413(api: Api, signed_in: Any) -> None:
    answer = await upload_raw(api, b"\xff" * (MAX_UPLOAD + 1), "image/jpeg")
    assert answer.status == 413
    assert answer.json["error"]["details"]["limit"] == MAX_UPLOAD


@pytest.mark.gen_test
async def test_upload_needs_sign_in(api: Api) -> None:
    answer = await upload_raw(api, transparent_png(), "image/png")
    assert answer.status == 401


@pytest.mark.gen_test
async def test_other_content_types_are_415(api: Api, signed_in: Any) -> None:
    answer = await api.put(AVATAR, {"avatar": "data:image/png;base64,AAAA"})
    assert answer.status == 415
    answer = await upload_raw(api, transparent_png(), "application/octet-stream")
    assert answer.status == 415


@pytest.mark.gen_test
async def test_multipart_without_the_avatar_field_is_422(api: Api, signed_in: Any) -> None:
    body, headers = multipart(transparent_png(), field="picture")
    answer = await api.put(AVATAR, body=body, headers=headers)
    assert answer.status == 422
    assert "avatar" in answer.json["error"]["details"]


@pytest.mark.gen_test
async def test_broken_multipart_is_400(api: Api, signed_in: Any) -> None:
    answer = await api.put(AVATAR, body=b"no parts here", headers={"Content-Type": "multipart/form-data"})
    assert answer.status == 400
    assert answer.error_code == "malformed_multipart"


# --- what /media serves -----------------------------------------------------------------------
@pytest.mark.gen_test
async def test_media_serves_only_avatars(api: Api, services: Any) -> None:
    incoming = services.media_dir / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    private = incoming / f"{uuid.uuid4().hex}.upload"
    private.write_bytes(transparent_png())
    for path in (
        f"/media/incoming/{private.name}",
        f"/media/avatars/../incoming/{private.name}",
        "/media/avatars/NoSuchFile1.jpg",
        "/media/avatars",
        "/media/avatars/",
    ):
        answer = await api.get(path)
        assert answer.status == 404, path
        assert answer.error_code == "not_found"
    private.unlink()
