"""Avatars: the caller uploads a picture; the worker turns it into their avatar."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tornado.httputil import HTTPFile, HTTPInputError, parse_body_arguments

from dispatch.core.errors import ApiError
from dispatch.core.policy import authenticated
from dispatch.core.vocabulary import AvatarStatus
from dispatch.domain import avatars
from handlers.base import BaseHandler
from models.avatars import AvatarAccepted

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file


class AvatarHandler(BaseHandler):
    max_body = avatars.MAX_UPLOAD + MULTIPART_OVERHEAD

    @authenticated
    async def put(self) -> None:
        """Upload a new avatar; it is checked now and processed in the background.
        ---
        operationId: uploadAvatar
        tags: [users]
        description: >
          Multipart form field `avatar`, or the raw image as the body with an `image/*` content type;
          at most 5 MB and 40 megapixels, JPEG, PNG, WebP or GIF. The worker fixes its orientation,
          strips its metadata, shrinks it to fit 200×200 and stores it under a new random name;
          `avatar_url` of `GET /users/me` then points to it. A non-image, a truncated file or too many
          pixels → 422 (codes `invalid_image`, `image_too_large`); an oversize body → 413.
        requestBody:
          required: true
          content:
            multipart/form-data:
              schema:
                type: object
                required: [avatar]
                properties:
                  avatar: {type: string, format: binary}
            image/*:
              schema: {type: string, format: binary}
        responses:
          202:
            description: Accepted; the avatar is being processed.
            content:
              application/json: {schema: AvatarAccepted}
        """
        data = self._upload()
        try:
            await avatars.check_upload_async(data)
        except avatars.ImageRejected as exc:
            raise exc.as_api_error() from None
        path = await avatars.save_incoming_async(self.services.settings.media_dir, data)
        try:
            await self.services.tasks.send(
                "avatars.process", str(self.user_id), path, self.services.settings.mongodb_db, time.time_ns()
            )
        except Exception:
            await asyncio.to_thread(Path(path).unlink, missing_ok=True)  # nobody will ever pick it up
            raise
        self.write_json(AvatarAccepted().dump({"status": AvatarStatus.PROCESSING}), 202)

    def _upload(self) -> bytes:
        """The image bytes: multipart field `avatar` or a raw `image/*` body; 415 for anything else."""
        content_type = self.request.headers.get("Content-Type", "")
        kind = content_type.split(";")[0].strip().lower()
        if kind.startswith("image/"):
            return self.body
        if kind != "multipart/form-data":
            raise ApiError(
                415,
                "unsupported_media_type",
                "Send the image as multipart/form-data (field `avatar`) or as an image/* body.",
            )
        files: dict[str, list[HTTPFile]] = {}
        try:
            parse_body_arguments(content_type, self.body, {}, files, self.request.headers)
        except HTTPInputError as exc:
            raise ApiError(400, "malformed_multipart", f"The multipart body cannot be read: {exc}.") from None
        if not files.get("avatar"):
            raise ApiError(
                422,
                "validation_error",
                "Some fields are not valid.",
                {"avatar": ["Missing file: send the image in the form field `avatar`."]},
            )
        return files["avatar"][0].body


default_handlers = [
    (r"/users/me/avatar", AvatarHandler),
]
