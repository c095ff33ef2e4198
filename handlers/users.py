"""Users: the caller's own profile."""

from __future__ import annotations

from dispatch.errors import ApiError
from dispatch.policy import authenticated
from handlers.base import BaseHandler
from models.users import MePatch, present_one

# Fields a category may not change on its own profile (SPEC section 4).
LOCKED_OWN_FIELDS = {"DRIVER": {"first_name", "last_name", "phone"}}


class MeHandler(BaseHandler):
    @authenticated
    async def get(self) -> None:
        """The caller's profile.
        ---
        tags: [users]
        responses:
          200:
            description: The caller.
            content:
              application/json: {schema: UserOut}
        """
        self.write_json(await present_one(self.db, self.current_user))

    @authenticated
    async def patch(self) -> None:
        """Edit the caller's profile; a new email address must be verified again.
        ---
        tags: [users]
        requestBody:
          required: true
          content:
            application/json: {schema: MePatch}
        responses:
          200:
            description: The updated profile.
            content:
              application/json: {schema: UserOut}
          403: {$ref: '#/components/responses/403'}
          409: {$ref: '#/components/responses/409'}
        """
        data = self.load(MePatch())
        data.pop("region", None)
        locked = LOCKED_OWN_FIELDS.get(self.current_category or "", set()) & set(data)
        if locked:
            raise ApiError(403, "field_locked", f"Your account may not change: {', '.join(sorted(locked))}.",
                           {"fields": sorted(locked)})
        user = self.current_user
        if "email" in data and data["email"].lower() != (user.get("email_lower") or ""):
            data.update(email_lower=data["email"].lower(), email_verified=False)
        else:
            data.pop("email", None)
        updated = await self.identity.users.update(self.user_id, data) if data else user
        if not data.get("email_verified", True):
            await self.identity.send_activation(updated)
        self.write_json(await present_one(self.db, updated))


default_handlers = [
    (r"/users/me", MeHandler),
]
