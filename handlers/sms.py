"""SMS log-in: ask for a one-time code, then trade it for a token pair."""

from __future__ import annotations

from dispatch.policy import public
from dispatch.sms_login import SmsLogin
from handlers.base import BaseHandler
from models.sms import SmsRequestIn, SmsVerifyIn


class SmsRequestHandler(BaseHandler):
    @public
    async def post(self) -> None:
        """Send a 6-digit log-in code by SMS; it works once, for 5 minutes.
        ---
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
        await SmsLogin(self.identity).request(data["phone"], self.client_ip)
        self.write_json({"status": "accepted"}, 202)


class SmsVerifyHandler(BaseHandler):
    @public
    async def post(self) -> None:
        """Log in with the SMS code; a new phone gets a new BASE account. Five wrong codes burn it.
        ---
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
        self.write_json(await SmsLogin(self.identity).verify(data["phone"], data["code"], self.client_ip, user_agent))


default_handlers = [
    (r"/auth/sms/request", SmsRequestHandler),
    (r"/auth/sms/verify", SmsVerifyHandler),
]
