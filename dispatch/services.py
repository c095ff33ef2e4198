"""The services of one process, built once: stores, settings, fan-out and every domain service.

Start-up reads as one pipeline, the same for the server, the CLI tools, seeds, benchmarks and tests:

    services = Services.open(settings)      # on the process's running event loop
    await ensure_indexes(services.db)
    services.start_sweeps()                 # serving processes only, not the one-job tools
    app = make_app(services)                # only what serves HTTP and websockets
    ...
    await services.close()

Handlers and sockets reach it as `self.services`; nothing is rebuilt per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from dispatch.core.events import EventBus
from dispatch.core.storage import open_stores
from dispatch.domain.api_keys import KeyDesk
from dispatch.domain.directory import Directory
from dispatch.domain.fleet import Fleet, PriceLists
from dispatch.domain.geofences import GeofenceDesk
from dispatch.domain.gps_watch import GpsWatch
from dispatch.domain.idempotency import Idempotency
from dispatch.domain.identity import Identity
from dispatch.domain.invitations import Joining
from dispatch.domain.milestones import MilestoneDesk
from dispatch.domain.notifications import Notifier
from dispatch.domain.orders import OrderDesk
from dispatch.domain.organizations import OrganizationDesk
from dispatch.domain.payments import Billing
from dispatch.domain.queue import TaskQueue
from dispatch.domain.routing import Router
from dispatch.domain.sms_login import PhoneVerification, SmsLogin
from dispatch.domain.support import SupportDesk
from dispatch.domain.tracking import ShareDesk
from dispatch.domain.waybills import WaybillDesk
from dispatch.domain.webhooks import WebhookDesk
from dispatch.realtime.hub import Hub
from dispatch.realtime.ingest import Ingest
from dispatch.settings import Settings
from models.invitations import Invitations
from models.notifications import Notifications


@dataclass
class Services:
    """Everything one process works with (thumbor's `Context`): built by `open`, released by `close`."""

    settings: Settings
    mongo: AsyncMongoClient[Any]
    db: AsyncDatabase[Any]
    redis: aioredis.Redis  # live state: positions, sessions, rate limits, fan-out
    cache: aioredis.Redis  # the user cache
    tasks: TaskQueue
    events: EventBus
    hub: Hub
    ingest: Ingest
    identity: Identity
    orders: OrderDesk
    fleet: Fleet
    price_lists: PriceLists
    waybills: WaybillDesk
    billing: Billing
    support: SupportDesk
    joining: Joining
    sms_login: SmsLogin
    phone_verification: PhoneVerification
    idempotency: Idempotency
    notifier: Notifier
    notifications: Notifications
    invitations: Invitations
    organizations: OrganizationDesk
    directory: Directory
    api_keys: KeyDesk
    webhooks: WebhookDesk
    router: Router
    geofences: GeofenceDesk
    gps_watch: GpsWatch
    tracking: ShareDesk
    milestones: MilestoneDesk

    @classmethod
    def open(cls, settings: Settings) -> Services:
        """Open the store clients and wire the domain; call on the process's running event loop."""
        stores = open_stores(settings)
        db = stores.mongo[settings.mongodb_db]
        redis = stores.redis
        tasks, events, hub = TaskQueue(settings), EventBus(), Hub(redis)
        identity = Identity(settings, db, redis, stores.cache, tasks, events)
        users = identity.users
        notifier = Notifier(db, events)
        webhooks = WebhookDesk(settings, db, redis, tasks, notifier)
        events.listen(notifier.on_event)
        events.listen(hub.publish_event)
        events.listen(webhooks.on_event, alongside=True)  # its outbox write overlaps the fan-out
        router, geofences = Router(settings), GeofenceDesk(db, redis, events)
        gps_watch = GpsWatch(settings, db, redis, events, router, geofences)
        events.listen(gps_watch.on_event)
        ingest = Ingest(db, redis, hub)
        ingest.watch(gps_watch.note)  # ETAs, arrivals and geofences: judged in the watch's own task
        orders = OrderDesk(db, redis, events, users, router)
        tracking = ShareDesk(settings, db, redis, events, orders, users)
        milestones = MilestoneDesk(settings, db, redis, tasks, users, tracking)
        events.listen(milestones.on_event, alongside=True)  # the customer's messages (SPEC section 11)
        return cls(
            settings=settings,
            mongo=stores.mongo,
            db=db,
            redis=redis,
            cache=stores.cache,
            tasks=tasks,
            events=events,
            hub=hub,
            ingest=ingest,
            identity=identity,
            orders=orders,
            fleet=Fleet(db, redis, users),
            price_lists=PriceLists(db),
            waybills=WaybillDesk(db, events),
            billing=Billing(db, users, events),
            support=SupportDesk(db, users),
            joining=Joining(db, users, events),
            sms_login=SmsLogin(identity),
            phone_verification=PhoneVerification(identity),
            idempotency=Idempotency(db),
            notifier=notifier,
            notifications=Notifications(db),
            invitations=Invitations(db),
            organizations=OrganizationDesk(db, users),
            directory=Directory(identity),
            api_keys=KeyDesk(settings, db, redis),
            webhooks=webhooks,
            router=router,
            geofences=geofences,
            gps_watch=gps_watch,
            tracking=tracking,
            milestones=milestones,
        )

    def start_sweeps(self) -> None:
        """Start the server's periodic sweeps: due webhook deliveries (dispatch.domain.webhooks) and customer
        messages whose task was lost (dispatch.domain.milestones). Serving processes call it once; a
        command-line tool that opens the services for one job leaves them to the servers."""
        self.webhooks.start()
        self.milestones.start()

    async def close(self) -> None:
        """Flush GPS history, stop the fan-out reader and the webhook sweeper, close the task queue and the
        store clients."""
        await self.webhooks.close()
        await self.milestones.close()
        await self.ingest.close()
        await self.gps_watch.close()
        await self.hub.close()
        self.tasks.close()
        await self.redis.aclose()
        await self.cache.aclose()
        await self.mongo.close()
