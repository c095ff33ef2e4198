"""Geofences: an organization's circles and polygons, and the enter/exit events of its vehicles.

MANAGERs manage their organizations' geofences, ADMINs every one; an API key with `fleet:read` reads
its organization's geofences and their events. A geofence outside the caller's organizations is 404.
The rules, and how GPS points are judged against the fences, live in dispatch/domain/geofences.py.
"""

from __future__ import annotations

from dispatch.core.policy import roles
from dispatch.core.vocabulary import Category, KeyScope
from handlers.base import BaseHandler
from models.common import parse_id
from models.geofences import GeofenceEventOut, GeofenceIn, GeofenceOut, GeofencePatch

GEOFENCE_OUT = GeofenceOut()
EVENT_OUT = GeofenceEventOut()
STAFF = (Category.MANAGER, Category.ADMIN)


class GeofencesHandler(BaseHandler):
    @roles(*STAFF, key=KeyScope.FLEET_READ)
    async def get(self) -> None:
        """List the geofences the caller may see (MANAGER and API key: their organizations'; ADMIN: all).
        ---
        tags: [geofences]
        parameters:
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: A page of geofences, newest first.
            content:
              application/json: {schema: GeofenceList}
        """
        page = self.page()
        docs, total = await self.services.geofences.page(self.current_user, page)
        self.write_json(page.envelope(GEOFENCE_OUT.dump(docs, many=True), total))

    @roles(*STAFF)
    async def post(self) -> None:
        """Create a geofence: a circle or a simple polygon the organization's vehicles are watched against.
        ---
        tags: [geofences]
        description: |
          Each vehicle of the organization raises `geofence.enter` / `geofence.exit` (a `geofence` frame on
          `fleet:<org>` and a webhook event) when its GPS points, judged in their own `ts` order, cross the
          fence; offline batches that arrive late or shuffled are judged in `ts` order too, and a resent
          point never raises an event twice.
        requestBody:
          required: true
          content:
            application/json: {schema: GeofenceIn}
        responses:
          201:
            description: The new geofence.
            content:
              application/json: {schema: GeofenceOut}
          422: {$ref: '#/components/responses/422'}
        """
        doc = await self.services.geofences.create(self.current_user, self.load(GeofenceIn()))
        self.write_json(GEOFENCE_OUT.dump(doc), 201)


class GeofenceHandler(BaseHandler):
    @roles(*STAFF, key=KeyScope.FLEET_READ)
    async def get(self, geofence_id: str) -> None:
        """One geofence.
        ---
        tags: [geofences]
        responses:
          200:
            description: The geofence.
            content:
              application/json: {schema: GeofenceOut}
        """
        doc = await self.services.geofences.get(self.current_user, parse_id(geofence_id))
        self.write_json(GEOFENCE_OUT.dump(doc))

    @roles(*STAFF)
    async def patch(self, geofence_id: str) -> None:
        """Rename a geofence or give it a new shape (vehicles are judged against the new shape from their next point).
        ---
        tags: [geofences]
        requestBody:
          required: true
          content:
            application/json: {schema: GeofencePatch}
        responses:
          200:
            description: The updated geofence.
            content:
              application/json: {schema: GeofenceOut}
          422: {$ref: '#/components/responses/422'}
        """
        changes = self.load(GeofencePatch())
        doc = await self.services.geofences.update(self.current_user, parse_id(geofence_id), changes)
        self.write_json(GEOFENCE_OUT.dump(doc))

    @roles(*STAFF)
    async def delete(self, geofence_id: str) -> None:
        """Delete a geofence and its events.
        ---
        tags: [geofences]
        responses:
          204: {description: Deleted.}
        """
        await self.services.geofences.delete(self.current_user, parse_id(geofence_id))
        self.set_status(204)
        self.finish()


class GeofenceEventsHandler(BaseHandler):
    @roles(*STAFF, key=KeyScope.FLEET_READ)
    async def get(self, geofence_id: str) -> None:
        """A geofence's enter/exit events, newest (by GPS time) first.
        ---
        tags: [geofences]
        parameters:
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: A page of events; `at` is the GPS point's own time.
            content:
              application/json: {schema: GeofenceEventList}
        """
        page = self.page()
        docs, total = await self.services.geofences.event_page(self.current_user, parse_id(geofence_id), page)
        self.write_json(page.envelope(EVENT_OUT.dump(docs, many=True), total))


default_handlers = [
    (r"/geofences", GeofencesHandler),
    (r"/geofences/(?P<geofence_id>[^/]+)", GeofenceHandler),
    (r"/geofences/(?P<geofence_id>[^/]+)/events", GeofenceEventsHandler),
]
