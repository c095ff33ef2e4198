"""Authentication: registration, activation, log-in, token refresh, sessions, passwords."""

from __future__ import annotations

from datetime import UTC, datetime

from dispatch.core.errors import ApiError, NotFound
from dispatch.core.policy import authenticated, public
from dispatch.domain.invitations import organization_of_code
from handlers.base import BaseHandler
from models.auth import LoginIn, PasswordChangeIn, PasswordForgotIn, PasswordResetIn, RefreshIn, SessionOut
from models.users import RegisterIn, present_one


class RegisterHandler(BaseHandler):
    @public(keys=False)
    async def post(self) -> None:
        """Create an account (BASE, DRIVER or MANAGER); an activation email is sent.
        ---
        operationId: registerAccount
        tags: [auth]
        description: >
          `invite_code` is a user's referral code (recorded as `invited_by`) or an organization's
          invite code: a DRIVER or BASE account registered with it joins that organization.
        requestBody:
          required: true
          content:
            application/json: {schema: RegisterIn}
        responses:
          201:
            description: The new account.
            content:
              application/json: {schema: UserOut}
          409: {$ref: '#/components/responses/409'}
        """
        data = self.load(RegisterIn())
        org = await organization_of_code(self.services.db, data)
        user = await self.services.identity.register(data)
        if org is not None:  # a new account belongs to no organization yet: the code's one is its first
            user = await self.services.identity.users.update(user["_id"], {"organizations": [org["_id"]]}) or user
        self.write_json(await present_one(self.services.db, user), 201)


class ActivateHandler(BaseHandler):
    @public(keys=False)
    async def get(self) -> None:
        """Verify an email address from the emailed link.
        ---
        operationId: activateAccount
        tags: [auth]
        parameters:
          - {name: token, in: query, required: true, schema: {type: string}}
        responses:
          200:
            description: The address is verified.
            content:
              application/json: {schema: ActivateOut}
          400: {$ref: '#/components/responses/400'}
        """
        token = self.get_query_argument("token", "")
        if not token:
            raise ApiError(400, "invalid_token", "The link has no token.")
        user = await self.services.identity.activate(token)
        self.write_json({"status": "verified", "email": user["email"]})


class LoginHandler(BaseHandler):
    @public(keys=False)
    async def post(self) -> None:
        """Log in with email, phone or username and a password; returns a token pair.
        ---
        operationId: login
        tags: [auth]
        requestBody:
          required: true
          content:
            application/json: {schema: LoginIn}
        responses:
          200:
            description: Access and refresh tokens.
            content:
              application/json: {schema: TokenPair}
          401: {$ref: '#/components/responses/401'}
          403: {$ref: '#/components/responses/403'}
          429: {$ref: '#/components/responses/429'}
        """
        data = self.load(LoginIn())
        tokens = await self.services.identity.login(data["login"], data["password"], self.client_ip, self.user_agent)
        self.write_json(tokens)

    @property
    def user_agent(self) -> str:
        return self.request.headers.get("User-Agent", "")


class RefreshHandler(BaseHandler):
    @public(keys=False)
    async def post(self) -> None:
        """Swap a refresh token for a new pair; the old refresh token stops working.
        ---
        operationId: refreshTokens
        tags: [auth]
        requestBody:
          required: true
          content:
            application/json: {schema: RefreshIn}
        responses:
          200:
            description: A new token pair.
            content:
              application/json: {schema: TokenPair}
          401: {$ref: '#/components/responses/401'}
        """
        data = self.load(RefreshIn())
        self.write_json(await self.services.identity.refresh(data["refresh_token"]))


class LogoutHandler(BaseHandler):
    @authenticated
    async def post(self) -> None:
        """End the calling session: its refresh and access tokens stop working at once.
        ---
        operationId: logout
        tags: [auth]
        responses:
          204: {description: Logged out.}
        """
        if self.session_id is not None:  # a signed-in caller's token always names its session
            await self.services.identity.sessions.revoke(self.session_id, str(self.user_id))
        self.set_status(204)
        self.finish()


class SessionsHandler(BaseHandler):
    @authenticated
    async def get(self) -> None:
        """The caller's active sessions (device, IP, times).
        ---
        operationId: listSessions
        tags: [auth]
        parameters:
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: Sessions, newest first.
            content:
              application/json: {schema: SessionList}
          422: {$ref: '#/components/responses/422'}
        """
        page = self.page()
        sessions = await self.services.identity.sessions.list(str(self.user_id))
        shown = [
            {
                "id": s.id,
                "ip": s.ip,
                "user_agent": s.user_agent,
                "created_at": _iso(s.created_at),
                "last_used_at": _iso(s.last_used_at),
                "current": s.id == self.session_id,
            }
            for s in sessions[page.offset : page.offset + page.limit]
        ]
        items = SessionOut(many=True).dump(shown)
        self.write_json(page.envelope(items, len(sessions)))


class SessionHandler(BaseHandler):
    @authenticated
    async def delete(self, session_id: str) -> None:
        """End one of the caller's sessions.
        ---
        operationId: endSession
        tags: [auth]
        responses:
          204: {description: The session is ended.}
        """
        owner, _ = await self.services.identity.sessions.owner(session_id[:64])
        if owner != str(self.user_id) or not await self.services.identity.sessions.revoke(session_id, owner):
            raise NotFound("No such session.")
        self.set_status(204)
        self.finish()


class PasswordForgotHandler(BaseHandler):
    @public(keys=False)
    async def post(self) -> None:
        """Ask for a password-reset email; answers 202 whether or not the address has an account.
        ---
        operationId: forgotPassword
        tags: [auth]
        requestBody:
          required: true
          content:
            application/json: {schema: PasswordForgotIn}
        responses:
          202:
            description: Accepted.
            content:
              application/json: {schema: Accepted}
          429: {$ref: '#/components/responses/429'}
        """
        data = self.load(PasswordForgotIn())
        await self.services.identity.forgot_password(data["email"], self.client_ip)
        self.write_json({"status": "accepted"}, 202)


class PasswordResetHandler(BaseHandler):
    @public(keys=False)
    async def post(self) -> None:
        """Set a new password with the emailed token; every session of the account ends.
        ---
        operationId: resetPassword
        tags: [auth]
        requestBody:
          required: true
          content:
            application/json: {schema: PasswordResetIn}
        responses:
          204: {description: The password is changed.}
        """
        data = self.load(PasswordResetIn())
        await self.services.identity.reset_password(data["token"], data["new_password"])
        self.set_status(204)
        self.finish()


class PasswordChangeHandler(BaseHandler):
    @authenticated
    async def post(self) -> None:
        """Change the caller's password; every session of the account ends (this one too).
        ---
        operationId: changePassword
        tags: [auth]
        requestBody:
          required: true
          content:
            application/json: {schema: PasswordChangeIn}
        responses:
          204: {description: The password is changed.}
        """
        data = self.load(PasswordChangeIn())
        await self.services.identity.change_password(self.user_id, data["old_password"], data["new_password"])
        self.set_status(204)
        self.finish()


def _iso(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


default_handlers = [
    (r"/auth/register", RegisterHandler),
    (r"/auth/activate", ActivateHandler),
    (r"/auth/login", LoginHandler),
    (r"/auth/refresh", RefreshHandler),
    (r"/auth/logout", LogoutHandler),
    (r"/auth/sessions", SessionsHandler),
    (r"/auth/sessions/(?P<session_id>[^/]+)", SessionHandler),
    (r"/auth/password/forgot", PasswordForgotHandler),
    (r"/auth/password/reset", PasswordResetHandler),
    (r"/auth/password/change", PasswordChangeHandler),
]
