"""The webhook sender: one task attempts one recorded delivery (dispatch/domain/webhooks.py writes them).

A task only names its delivery (and database); everything else is read from the outbox, so a task
sent twice, or re-sent by the sweeper after a lost one, is harmless: the delivery is claimed with a
lease in one atomic write, and a delivery that is not due, already held, or finished is left alone.
A delivery that waits behind an earlier one of the same order is left alone too: when the earlier
one finishes, its task sends the next.

The HTTP exchange is bounded as a whole by `DISPATCH_WEBHOOK_TIMEOUT`: it runs on a small asyncio
loop under one deadline (a receiver that trickles bytes or never answers is cut off there), the
answer's body is read to at most MAX_ANSWER_BYTES, and redirects are never followed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from bson import ObjectId
from celery import shared_task
from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import ConnectionFailure

import dispatch
from dispatch.core.netguard import UnsafeUrl, default_port, first_refusal, literal_address, parse_url
from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import DeliveryStatus
from dispatch.domain.webhooks import BATCH_TASK, TASK, retry_delay
from dispatch.settings import Settings
from models.webhooks import (
    DELIVERIES,
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    WEBHOOKS,
    claim_filter,
    earlier_pending,
    next_in_line,
    queued_update,
    signature,
)
from tasks import settings_of
from tasks.clients import mongo

log = logging.getLogger("dispatch.webhooks")

MAX_ANSWER_BYTES = 64 * 1024  # of an answer's body, at most this much is read (and 500 characters kept)
LEASE_MARGIN = 30  # seconds a claim outlives the attempt's deadline (the writes around it)
USER_AGENT = f"dispatch-webhooks/{dispatch.__version__}"


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: the receiver's status (None if it never answered) and what went wrong."""

    status: int | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.error is None


@shared_task(bind=True, name=TASK, autoretry_for=(ConnectionFailure,), retry_backoff=2, max_retries=5)
def deliver(self: Any, db_name: str, delivery_id: str) -> str:
    """Attempt one webhook delivery if it is due and free; returns what happened (for the worker log)."""
    settings = settings_of(self.app)
    db = mongo(settings.mongodb_url)[db_name]
    return Sender(settings, db, lambda next_id: self.app.send_task(TASK, args=[db_name, str(next_id)])).run(
        ObjectId(delivery_id)
    )


@shared_task(bind=True, name=BATCH_TASK)
def deliver_many(self: Any, db_name: str, delivery_ids: list[str]) -> int:
    """The server's one message for many new deliveries: one `webhooks.deliver` task each, so a slow
    receiver holds up only its own deliveries."""
    for delivery_id in delivery_ids:
        self.app.send_task(TASK, args=[db_name, delivery_id])
    return len(delivery_ids)


class Sender:
    """Claims a delivery, POSTs it signed, records the outcome, and lets the next one of its order go."""

    def __init__(self, settings: Settings, db: Database[Any], send_next: Any) -> None:
        self.settings = settings
        self.deliveries = db[DELIVERIES]
        self.webhooks = db[WEBHOOKS]
        self.send_next = send_next

    def run(self, delivery_id: ObjectId) -> str:
        """The whole task: claim, attempt, record, hand on."""
        delivery = self.deliveries.find_one({"_id": delivery_id}, {"body": 0})
        if delivery is None or delivery["status"] != DeliveryStatus.PENDING:
            return "finished"
        earlier = earlier_pending(delivery)
        if earlier is not None and self.deliveries.count_documents(earlier, limit=1):
            return "waiting"  # the earlier one's task sends this one when it is done
        now = utcnow()
        lease = now + timedelta(seconds=self.settings.webhook_timeout + LEASE_MARGIN)
        claimed = self.deliveries.find_one_and_update(
            claim_filter(delivery_id, now), {"$set": {"locked_until": lease}}, return_document=ReturnDocument.AFTER
        )
        if claimed is None:
            return "not due or held"
        webhook = self.webhooks.find_one({"_id": claimed["webhook_id"]})
        if webhook is None or not webhook.get("active"):
            self._give_up(claimed, lease, "The webhook is inactive." if webhook else "The webhook was deleted.")
            result = "dropped"
        else:
            result = self._record(claimed, webhook, lease, self.attempt(webhook, claimed))
        if result != "retrying":
            self._hand_on(claimed)
        return result

    def attempt(self, webhook: dict[str, Any], delivery: dict[str, Any]) -> Outcome:
        """POST the delivery's body, signed now, within the timeout."""
        body = delivery["body"].encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: delivery["event_type"],
            DELIVERY_HEADER: str(delivery["_id"]),
            SIGNATURE_HEADER: signature(webhook["secret"], int(time.time()), body),
        }
        allow_private = self.settings.webhooks_may_reach_private
        return asyncio.run(post_within(webhook["url"], body, headers, self.settings.webhook_timeout, allow_private))

    def _record(self, delivery: dict[str, Any], webhook: dict[str, Any], lease: Any, outcome: Outcome) -> str:
        """Write the outcome (if the claim is still ours) and keep the webhook's failure count."""
        attempts, now = delivery["attempts"] + 1, utcnow()
        facts: dict[str, Any] = {
            "attempts": attempts,
            "last_status_code": outcome.status,
            "last_error": outcome.error,
            "locked_until": now,
            "queued": False,
        }
        if outcome.delivered:
            facts.update(status=DeliveryStatus.DELIVERED, delivered_at=now, next_attempt_at=None)
            result = "delivered"
        elif attempts >= self.settings.webhook_max_attempts:
            facts.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
            result = "failed"
        else:
            delay = retry_delay(attempts, self.settings.webhook_retry_base)
            facts.update(next_attempt_at=now + timedelta(seconds=delay))
            result = "retrying"
        self.deliveries.update_one({"_id": delivery["_id"], "locked_until": lease}, {"$set": facts})
        if result == "delivered":
            self.webhooks.update_one(
                {"_id": webhook["_id"], "consecutive_failures": {"$ne": 0}}, {"$set": {"consecutive_failures": 0}}
            )
        elif result == "failed":
            self._count_failure(webhook["_id"], now)
        log.info("webhook delivery %s: %s (%s)", delivery["_id"], result, outcome.error or outcome.status)
        return result

    def _count_failure(self, webhook_id: ObjectId, now: Any) -> None:
        """One more failed delivery in a row; at the limit the webhook goes inactive (the server's sweeper
        then tells the organization's managers, once)."""
        hook = self.webhooks.find_one_and_update(
            {"_id": webhook_id}, {"$inc": {"consecutive_failures": 1}}, return_document=ReturnDocument.AFTER
        )
        if hook is not None and hook["active"] and hook["consecutive_failures"] >= self.settings.webhook_disable_after:
            turned_off = self.webhooks.update_one(
                {"_id": webhook_id, "active": True},
                {"$set": {"active": False, "disabled_notice": True, "updated_at": now}},
            )
            if turned_off.modified_count:
                log.warning(
                    "webhook %s set inactive after %d failed deliveries", webhook_id, hook["consecutive_failures"]
                )

    def _give_up(self, delivery: dict[str, Any], lease: Any, reason: str) -> None:
        """Finish a delivery that cannot be sent any more (its webhook is gone or inactive); not a failure
        of the receiver, so it does not count towards turning the webhook off."""
        now = utcnow()
        self.deliveries.update_one(
            {"_id": delivery["_id"], "locked_until": lease},
            {
                "$set": {
                    "status": DeliveryStatus.FAILED,
                    "last_error": reason,
                    "next_attempt_at": None,
                    "locked_until": now,
                    "queued": False,
                }
            },
        )

    def _hand_on(self, delivery: dict[str, Any]) -> None:
        """A finished delivery lets the next one of its order go (the sweeper would, later)."""
        query = next_in_line(delivery)
        following = None if query is None else self.deliveries.find_one(query, {"_id": 1}, sort=[("seq", ASCENDING)])
        if following is not None:
            self.deliveries.update_one({"_id": following["_id"]}, queued_update(utcnow()))
            self.send_next(following["_id"])


async def post_within(url: str, body: bytes, headers: dict[str, str], timeout: float, allow_private: bool) -> Outcome:
    """POST within `timeout` seconds in all; the status counts once it has come, even if the body has not."""
    seen: dict[str, int] = {}
    try:
        return await asyncio.wait_for(_post(url, body, headers, timeout, allow_private, seen), timeout)
    except TimeoutError:
        if "status" in seen:  # the answer came; only its body was slow
            return Outcome(seen["status"], None if 200 <= seen["status"] < 300 else f"HTTP {seen['status']}")
        return Outcome(None, f"No answer within {timeout:g} s.")
    except UnsafeUrl as exc:
        return Outcome(None, f"Refused: {exc}")
    except (httpx.HTTPError, OSError) as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500])


async def _post(
    url: str, body: bytes, headers: dict[str, str], timeout: float, allow_private: bool, seen: dict[str, int]
) -> Outcome:
    parts = parse_url(url)
    host = parts.hostname or ""
    addresses = await _addresses(host, default_port(parts))
    if not allow_private:  # checked again now: what a name resolves to can change after it was accepted
        reason = first_refusal(addresses)
        if reason is not None:
            raise UnsafeUrl(reason)
    # The request goes to the address just checked, under its name (the Host header, the TLS server
    # name): were the HTTP client to look the name up again, a second answer could be a private one.
    target = httpx.URL(url)
    pinned = target.copy_with(host=addresses[0])
    headers = {**headers, "Host": target.netloc.decode("ascii")}
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    async with (
        httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client,
        client.stream("POST", pinned, content=body, headers=headers, extensions=extensions) as answer,
    ):
        seen["status"] = answer.status_code
        if 200 <= answer.status_code < 300:
            return Outcome(answer.status_code)
        return Outcome(answer.status_code, f"HTTP {answer.status_code}: {await _start_of(answer)}"[:500])


async def _start_of(answer: httpx.Response) -> str:
    """The start of an answer's body, reading MAX_ANSWER_BYTES at most, whatever its size."""
    kept = b""
    async for chunk in answer.aiter_raw():
        kept += chunk[: MAX_ANSWER_BYTES - len(kept)]
        if len(kept) >= MAX_ANSWER_BYTES:
            break
    return kept[:500].decode(errors="replace")


async def _addresses(host: str, port: int) -> list[str]:
    """The addresses a URL's host stands for, looked up once per attempt (off the loop, in asyncio's executor)."""
    literal = literal_address(host)
    if literal is not None:
        return [str(literal)]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]
