"""Avatars: the checks an upload passes before it is queued, and the Pillow work the worker does.

The server only inspects an upload (header, pixel count, a cheap full read) in a
worker thread; decoding, orienting, stripping and shrinking happen in the Celery
task (tasks/avatars.py), which calls `make_avatar` here.
"""

from __future__ import annotations

import asyncio
import io
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

from dispatch.core.errors import ApiError
from dispatch.core.files import write_atomically
from dispatch.core.security import random_code

MAX_UPLOAD = 5 * 1024 * 1024  # bytes of the image itself
MAX_PIXELS = 40_000_000  # width × height, read from the header before any decoding
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
SIZE = (200, 200)
AVATARS_DIR = "avatars"  # served at /media/avatars/
INCOMING_DIR = "incoming"  # uploads waiting for the worker; never served
URL_PREFIX = "/media/avatars/"
NAME_LENGTH = 24

# Pillow refuses (warning, then error at twice the value) images over this many pixels;
# the warning is turned into a refusal where images are opened.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

# One thread: bounds the memory spent on checks, and `warnings.catch_warnings` is only
# safe when no other thread swaps the warning filters at the same time.
_CHECK_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avatar-check")

# What a broken or hostile file makes Pillow's decoders raise.
DECODE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    KeyError,
    MemoryError,
    Image.DecompressionBombError,
)


class ImageRejected(Exception):
    """A file that is not an acceptable avatar image."""

    code = "invalid_image"
    message = "Not a readable JPEG, PNG, WebP or GIF image."

    def __init__(self) -> None:
        super().__init__(self.message)

    def as_api_error(self) -> ApiError:
        """The 422 answered for the `avatar` field."""
        return ApiError(422, self.code, self.message, {"avatar": [self.message]})


class TooManyPixels(ImageRejected):
    """More pixels than an avatar may have (decompression bombs included)."""

    code = "image_too_large"
    message = f"The image has more than {MAX_PIXELS // 1_000_000} megapixels."


@dataclass(frozen=True)
class Avatar:
    """A finished avatar: the encoded file and its extension."""

    data: bytes
    extension: str


def open_checked(source: IO[bytes] | str | Path) -> Image.Image:
    """Open an image of an allowed format, refusing decompression bombs from the header alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(source, formats=ALLOWED_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise TooManyPixels() from None
        except DECODE_ERRORS:
            raise ImageRejected() from None
    if image.width * image.height > MAX_PIXELS:
        image.close()
        raise TooManyPixels()
    return image


def check_upload(data: bytes) -> str:
    """The upload's format if it is a whole, readable image within the limits; ImageRejected otherwise."""
    if len(data) > MAX_UPLOAD:
        raise ApiError(413, "body_too_large", f"The image is over {MAX_UPLOAD} bytes.", {"limit": MAX_UPLOAD})
    with open_checked(io.BytesIO(data)) as image:
        image_format = image.format or ""
        try:
            image.verify()  # structure and checksums (PNG chunk CRCs) without decoding
        except DECODE_ERRORS:
            raise ImageRejected() from None
    if image_format != "PNG":  # verify() reads no JPEG/WebP/GIF pixel data: decode to find truncation
        with open_checked(io.BytesIO(data)) as image:
            try:
                if image_format == "JPEG":
                    image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))  # 1/8-scale decode: cheap
                image.load()
            except DECODE_ERRORS:
                raise ImageRejected() from None
    return image_format


async def check_upload_async(data: bytes) -> str:
    """`check_upload` in a worker thread: Pillow never runs on the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_CHECK_POOL, check_upload, data)


def save_incoming(media_dir: str, data: bytes) -> str:
    """Write an upload where the worker picks it up; the path is returned."""
    folder = Path(media_dir) / INCOMING_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{time.time_ns()}-{random_code(16)}.upload"
    write_atomically(target, data)
    return str(target.resolve())


async def save_incoming_async(media_dir: str, data: bytes) -> str:
    """`save_incoming` off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, save_incoming, media_dir, data)


def is_incoming(media_dir: str, path: str) -> bool:
    """Whether a path names a file inside the incoming folder (task arguments are checked, not trusted)."""
    folder = (Path(media_dir) / INCOMING_DIR).resolve()
    return Path(path).resolve().parent == folder


def make_avatar(path: str | Path) -> Avatar:
    """Orient, strip every metadata, shrink to fit 200×200; PNG when transparent, else JPEG."""
    with open_checked(path) as image:
        try:
            if image.format == "JPEG":
                image.draft("RGB", (SIZE[0] * 2, SIZE[1] * 2))  # decode big JPEGs at a reduced scale
            oriented = ImageOps.exif_transpose(image)
            return _encode(oriented)
        except DECODE_ERRORS:
            raise ImageRejected() from None


def _encode(image: Image.Image) -> Avatar:
    transparent = image.has_transparency_data
    mode = "RGBA" if transparent else "RGB"
    converted = image.convert(mode)
    # A new image from the pixels alone: no EXIF, ICC profile, text chunks or comments survive.
    clean = Image.frombytes(mode, converted.size, converted.tobytes())
    clean.thumbnail(SIZE, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if transparent:
        clean.save(out, "PNG", optimize=True)
        return Avatar(out.getvalue(), "png")
    clean.save(out, "JPEG", quality=88, optimize=True)
    return Avatar(out.getvalue(), "jpg")


def new_name(extension: str) -> str:
    """A fresh random file name for an avatar."""
    return f"{random_code(NAME_LENGTH)}.{extension}"


def file_of(media_dir: str, avatar_url: str | None) -> Path | None:
    """The file behind an avatar URL we made, or None for anything else."""
    if not avatar_url or not avatar_url.startswith(URL_PREFIX):
        return None
    name = avatar_url[len(URL_PREFIX) :]
    if not name or "/" in name or not name.replace(".", "").isalnum():
        return None
    return Path(media_dir) / AVATARS_DIR / name
