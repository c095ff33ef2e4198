"""SMS codes: log in with a one-time code, or confirm the phone of the signed-in account."""

from __future__ import annotations

from dispatch.core.errors import NotFound
from dispatch.core.policy import authenticated, public
from handlers.base import BaseHandler
from models.sms import PhoneVerifyIn, SmsRequestIn, SmsVerifyIn
from models.users import present_one


class SmsRequestHandler(BaseHandler):
    @public(keys=False)
    async def post(self) -> None:
        """Send a 6-digit log-in code by SMS; it works once, for 5 minutes.
        ---
        operationId: requestSmsCode
        tags: [auth]
        requestBody:
          required: true
          content:
            application/json: {schema: SmsRequestIn}
        responses:
          202:
            description: The code is on its way.
            content:
              application/json: {schema: Accepted}
          429: {$ref: '#/components/responses/429'}
        """
        data = self.load(SmsRequestIn())
        await self.services.sms_login.request(data["phone"], self.client_ip)
        self.write_json({"status": "accepted"}, 202)


class SmsVerifyHandler(BaseHandler):
    @public(keys=False)
    async def post(self) -> None:
        """Log in with the SMS code: it reaches the account that verified the phone, else a new BASE account.
        ---
        operationId: verifySmsCode
        tags: [auth]
        requestBody:
          required: true
          content:
            application/json: {schema: SmsVerifyIn}
        responses:
          200:
            description: Access and refresh tokens.
            content:
              application/json: {schema: TokenPair}
          400:
            description: "`invalid_code`: wrong, expired, used or burnt (details may give `attempts_left`)."
            content:
              application/json: {schema: Error}
          403: {$ref: '#/components/responses/403'}
          429: {$ref: '#/components/responses/429'}
        """
        data = self.load(SmsVerifyIn())
        user_agent = self.request.headers.get("User-Agent", "")
        self.write_json(await self.services.sms_login.verify(data["phone"], data["code"], self.client_ip, user_agent))


class PhoneVerifyHandler(BaseHandler):
    @authenticated
    async def post(self) -> None:
        """Confirm the phone given to `PATCH /users/me` with the code texted to it; it becomes the caller's.
        ---
        operationId: verifyPhone
        tags: [users]
        description: >
          The phone is then verified: it logs in (password or SMS) and is unique. Any account that held
          the same number unverified loses it. Five wrong codes burn the code.
        requestBody:
          required: true
          content:
            application/json: {schema: PhoneVerifyIn}
        responses:
          200:
            description: The caller's profile with the verified phone.
            content:
              application/json: {schema: UserOut}
          400:
            description: "`invalid_code`: wrong, expired, used or burnt (details may give `attempts_left`)."
            content:
              application/json: {schema: Error}
          409: {$ref: '#/components/responses/409'}
          429: {$ref: '#/components/responses/429'}
        """
        data = self.load(PhoneVerifyIn())
        user = await self.services.phone_verification.verify(self.user_id, data["code"], self.client_ip)
        if user is None:
            raise NotFound("No such user.")
        self.write_json(await present_one(self.services.db, user))


default_handlers = [
    (r"/auth/sms/request", SmsRequestHandler),
    (r"/auth/sms/verify", SmsVerifyHandler),
    (r"/users/me/phone/verify", PhoneVerifyHandler),
]
