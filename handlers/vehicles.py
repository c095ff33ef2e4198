"""Fleet: vehicle types (pricing), vehicles, nearby search and route replay.

Vehicle types are price lists: each organization's, plus the shared catalogue (`organization`
null) that only ADMINs write. MANAGERs write their organizations' lists. Clients read every list
(they may order from any organization); MANAGERs and DRIVERs the shared one and their own.
"""

from __future__ import annotations

from typing import Any

from dispatch.core.policy import authenticated, roles
from dispatch.core.vocabulary import Category, KeyScope
from handlers.base import BaseHandler, query_of
from models.common import parse_id
from models.vehicles import (
    NearbyQuery,
    NearbyTruck,
    NearbyVehicle,
    TrackQuery,
    VehicleIn,
    VehicleOut,
    VehiclePatch,
    VehicleQuery,
    VehicleTrack,
    VehicleTypeIn,
    VehicleTypeOut,
    VehicleTypePatch,
    VehicleTypeQuery,
)

TYPE_OUT = VehicleTypeOut()
VEHICLE_OUT = VehicleOut()
NEARBY_OUT = NearbyVehicle()
NEARBY_CLIENT_OUT = NearbyTruck()  # clients see trucks, not who drives them or for whom
TRACK_OUT = VehicleTrack()


class FleetHandler(BaseHandler):
    """Answers with vehicles and their live locations."""

    async def write_vehicles(self, docs: list[dict[str, Any]], total: int | None = None, status: int = 200) -> None:
        """Answer with vehicles (one, or a page when `total` is given), each with its live location."""
        shown = VEHICLE_OUT.dump(await self.services.fleet.with_locations(docs), many=True)
        self.write_json(shown[0] if total is None else self.page().envelope(shown, total), status)


class VehicleTypesHandler(BaseHandler):
    @authenticated(key=KeyScope.FLEET_READ)
    async def get(self) -> None:
        """List vehicle types (kinds of car being towed) and their prices: the shared catalogue and the
        organizations' price lists the caller may read (clients and ADMINs: every one; MANAGERs and DRIVERs:
        their organizations').
        ---
        tags: [fleet]
        parameters:
          - {in: query, schema: VehicleTypeQuery}
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: A page of vehicle types, by name.
            content:
              application/json: {schema: VehicleTypeList}
          422: {$ref: '#/components/responses/422'}
        """
        filters = self.load(VehicleTypeQuery(), query_of(self))
        page = self.page()
        docs, total = await self.services.price_lists.page(self.current_user, filters, page)
        self.write_json(page.envelope(TYPE_OUT.dump(docs, many=True), total))

    @roles(Category.MANAGER, Category.ADMIN)
    async def post(self) -> None:
        """Add a vehicle type with its pricing to a price list: a MANAGER to one of their organizations'
        (`organization` required), an ADMIN to any, or to the shared catalogue (`organization` null).
        ---
        tags: [fleet]
        requestBody:
          required: true
          content:
            application/json: {schema: VehicleTypeIn}
        responses:
          201:
            description: The new vehicle type.
            content:
              application/json: {schema: VehicleTypeOut}
          409: {$ref: '#/components/responses/409'}
          422: {$ref: '#/components/responses/422'}
        """
        doc = await self.services.price_lists.create(self.current_user, self.load(VehicleTypeIn()))
        self.write_json(TYPE_OUT.dump(doc), 201)


class VehicleTypeHandler(BaseHandler):
    @authenticated(key=KeyScope.FLEET_READ)
    async def get(self, type_id: str) -> None:
        """One vehicle type (outside the price lists the caller reads: 404).
        ---
        tags: [fleet]
        responses:
          200:
            description: The vehicle type.
            content:
              application/json: {schema: VehicleTypeOut}
        """
        self.write_json(TYPE_OUT.dump(await self.services.price_lists.get(self.current_user, parse_id(type_id))))

    @roles(Category.MANAGER, Category.ADMIN)
    async def patch(self, type_id: str) -> None:
        """Edit a vehicle type's name or prices (orders keep the estimate they were given): a MANAGER those of
        their organizations' price lists (the shared catalogue: 403, another organization's: 404), an ADMIN any.
        ---
        tags: [fleet]
        requestBody:
          required: true
          content:
            application/json: {schema: VehicleTypePatch}
        responses:
          200:
            description: The updated vehicle type.
            content:
              application/json: {schema: VehicleTypeOut}
          403: {$ref: '#/components/responses/403'}
          409: {$ref: '#/components/responses/409'}
        """
        changes = self.load(VehicleTypePatch())
        doc = await self.services.price_lists.update(self.current_user, parse_id(type_id), changes)
        self.write_json(TYPE_OUT.dump(doc))


class VehiclesHandler(FleetHandler):
    @roles(Category.DRIVER, Category.MANAGER, Category.ADMIN, key=KeyScope.FLEET_READ)
    async def get(self) -> None:
        """List vehicles: ADMIN all, MANAGER their organizations', DRIVER their own.
        ---
        tags: [fleet]
        parameters:
          - {in: query, schema: VehicleQuery}
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: A page of vehicles by plate, each with its last known location.
            content:
              application/json: {schema: VehicleList}
        """
        filters = self.load(VehicleQuery(), query_of(self))
        docs, total = await self.services.fleet.page(self.current_user, filters, self.page())
        await self.write_vehicles(docs, total)

    @roles(Category.MANAGER, Category.ADMIN)
    async def post(self) -> None:
        """Add a tow truck to an organization (a MANAGER: one of theirs).
        ---
        tags: [fleet]
        requestBody:
          required: true
          content:
            application/json: {schema: VehicleIn}
        responses:
          201:
            description: The new vehicle.
            content:
              application/json: {schema: VehicleOut}
          409: {$ref: '#/components/responses/409'}
        """
        doc = await self.services.fleet.create(self.current_user, self.load(VehicleIn()))
        await self.write_vehicles([doc], status=201)


class NearbyHandler(FleetHandler):
    @roles(Category.BASE, Category.MANAGER, Category.ADMIN, key=KeyScope.FLEET_READ)
    async def get(self) -> None:
        """Available vehicles near a point, nearest first (clients and ADMINs: every fleet; MANAGERs, keys: theirs).
        ---
        operationId: listNearbyVehicles
        tags: [fleet]
        description: |
          MANAGERs, ADMINs and API keys get full vehicles (`NearbyVehicleList`); clients get each truck as
          `{id, type, location, distance_km}` only (`NearbyTruckList`): no driver, organization or plate.
        parameters:
          - {in: query, schema: NearbyQuery}
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: Available vehicles within the radius, each with `distance_km`.
            content:
              application/json:
                schema:
                  anyOf: [NearbyVehicleList, NearbyTruckList]
          422: {$ref: '#/components/responses/422'}
        """
        query = self.load(NearbyQuery(), query_of(self))
        page = self.page()
        docs, total = await self.services.fleet.nearby(
            self.current_user, query["lat"], query["lon"], query["radius_km"], page
        )
        shown = NEARBY_CLIENT_OUT if self.current_user.get("category") == Category.BASE else NEARBY_OUT
        self.write_json(page.envelope(shown.dump(docs, many=True), total))


class VehicleHandler(FleetHandler):
    @roles(Category.DRIVER, Category.MANAGER, Category.ADMIN, key=KeyScope.FLEET_READ)
    async def get(self, vehicle_id: str) -> None:
        """One vehicle with its last known location.
        ---
        tags: [fleet]
        responses:
          200:
            description: The vehicle.
            content:
              application/json: {schema: VehicleOut}
        """
        await self.write_vehicles([await self.services.fleet.get(self.current_user, parse_id(vehicle_id))])

    @roles(Category.MANAGER, Category.ADMIN)
    async def patch(self, vehicle_id: str) -> None:
        """Edit a vehicle; moving it to another organization forgets its live position.
        ---
        tags: [fleet]
        requestBody:
          required: true
          content:
            application/json: {schema: VehiclePatch}
        responses:
          200:
            description: The updated vehicle.
            content:
              application/json: {schema: VehicleOut}
          409: {$ref: '#/components/responses/409'}
        """
        changes = self.load(VehiclePatch())
        doc = await self.services.fleet.update(self.current_user, parse_id(vehicle_id), changes)
        await self.write_vehicles([doc])

    @roles(Category.MANAGER, Category.ADMIN)
    async def delete(self, vehicle_id: str) -> None:
        """Remove a vehicle that is not busy with an order.
        ---
        tags: [fleet]
        responses:
          204:
            description: Removed, with its live position.
          409: {$ref: '#/components/responses/409'}
        """
        await self.services.fleet.delete(self.current_user, parse_id(vehicle_id))
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()


class VehicleTrackHandler(FleetHandler):
    @roles(Category.DRIVER, Category.MANAGER, Category.ADMIN, key=KeyScope.FLEET_READ)
    async def get(self, vehicle_id: str) -> None:
        """A vehicle's stored GPS history between two times (route replay) and its length.
        ---
        tags: [fleet]
        parameters:
          - {in: query, schema: TrackQuery}
        responses:
          200:
            description: The points in time order and the path length in km.
            content:
              application/json: {schema: VehicleTrack}
          422: {$ref: '#/components/responses/422'}
        """
        query = self.load(TrackQuery(), query_of(self))
        track = await self.services.fleet.track(
            self.current_user, parse_id(vehicle_id), query.get("start"), query.get("end")
        )
        self.write_json(TRACK_OUT.dump(track))


default_handlers = [
    (r"/vehicle-types", VehicleTypesHandler),
    (r"/vehicle-types/(?P<type_id>[^/]+)", VehicleTypeHandler),
    (r"/vehicles", VehiclesHandler),
    (r"/vehicles/nearby", NearbyHandler),
    (r"/vehicles/(?P<vehicle_id>[^/]+)", VehicleHandler),
    (r"/vehicles/(?P<vehicle_id>[^/]+)/track", VehicleTrackHandler),
]
