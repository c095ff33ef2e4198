"""Milestone messages to customers (dispatch/domain/milestones.py records them): one task sends one
recorded message through the SMS or email backend, once.

The task names only its message; the text, the address and the state are read from the outbox. A
message already sent is left alone (a retried or duplicated task sends nothing); one another worker
holds is retried after its lease. The lease is the broker's visibility timeout: a task a killed worker
held comes back no sooner, and then finds the lease run out and sends the message again, under the
same id (the SMS payload's `id`, the email's `Message-ID`) so a receiver can drop the repeat.
"""

from __future__ import annotations

import smtplib
from typing import Any

from celery import shared_task
from pymongo import ReturnDocument
from pymongo.errors import ConnectionFailure

from dispatch.core.timeutil import utcnow
from dispatch.core.vocabulary import MessageStatus
from dispatch.domain.milestones import TASK
from models.milestones import COLLECTION, claim_filter, claim_update, sent_update
from tasks import email, settings_of, sms
from tasks.clients import mongo


@shared_task(
    bind=True,
    name=TASK,
    autoretry_for=(OSError, smtplib.SMTPException, ConnectionFailure),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=8,
)
def send_customer_message(self: Any, db_name: str, msg_id: str) -> str:
    """Send one recorded milestone message unless it was sent; returns what happened (for the worker log)."""
    settings = settings_of(self.app)
    messages = mongo(settings.mongodb_url)[db_name][COLLECTION]
    now = utcnow()
    lease = float(settings.task_visibility_timeout)
    message = messages.find_one_and_update(
        claim_filter(msg_id, now), claim_update(now, lease), return_document=ReturnDocument.AFTER
    )
    if message is None:
        current = messages.find_one({"_id": msg_id}, {"status": 1, "locked_until": 1})
        if current is None or current["status"] == MessageStatus.SENT:
            return "finished"
        wait = max(1.0, (current["locked_until"] - now).total_seconds())
        raise self.retry(countdown=wait, max_retries=None)  # another attempt holds it: after its lease
    try:
        if message["channel"] == "sms":
            sms.deliver(settings, message["to"], message["text"], message_id=msg_id)
        else:
            built = email.build_message(settings, message["to"], message["subject"], message["text"])
            email.deliver(settings, email.with_id(built, msg_id))
    except Exception:
        messages.update_one({"_id": msg_id}, {"$set": {"locked_until": now}})  # free for the retry at once
        raise
    messages.update_one({"_id": msg_id}, sent_update(utcnow()))
    return "sent"
