"""The scope table: each row's MongoDB filter and its test on one document name the same documents."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from bson import ObjectId

from dispatch.core.errors import ApiError
from dispatch.core.vocabulary import Category
from dispatch.domain import scopes
from dispatch.domain.scopes import SCOPES, Resource, orgs_of

ORG_A, ORG_B, ORG_C = ObjectId(), ObjectId(), ObjectId()
ME = ObjectId()
SOMEONE = ObjectId()
# Documents of every shape the table looks at: organization (one, none, missing), people, memberships.
FIELD_VALUES = {
    "organization": [ORG_A, ORG_C, None, "missing"],
    "driver_id": [ME, SOMEONE],
    "client_id": [ME, SOMEONE],
    "created_by": [ME, SOMEONE],
    "organizations": [[ORG_A], [ORG_B, ORG_C], [], "missing"],
}


def documents() -> list[dict[str, Any]]:
    """One document per combination of the field values (an `_id` each; `missing`: no such field)."""
    docs = []
    for values in itertools.product(*FIELD_VALUES.values()):
        doc = {"_id": ObjectId(), **{k: v for k, v in zip(FIELD_VALUES, values, strict=False) if v != "missing"}}
        docs.append(doc)
    docs += [{"_id": ORG_A}, {"_id": ORG_C}]  # organizations themselves
    return docs


def caller(category: Category) -> dict[str, Any]:
    return {"_id": ME, "category": category, "organizations": [ORG_A, ORG_B]}


@pytest.fixture
def collection(sync_db: Any) -> Any:
    docs = documents()
    sync_db["scope_table"].insert_many(docs)
    yield sync_db["scope_table"]
    sync_db["scope_table"].drop()


@pytest.mark.parametrize("resource", list(Resource))
def test_each_rows_filter_and_test_agree_in_the_store(collection: Any, resource: Resource) -> None:
    docs = list(collection.find())
    for category in Category:
        user = caller(category)
        if category not in SCOPES[resource]:
            with pytest.raises(ApiError) as refused:
                scopes.query(resource, user)
            assert refused.value.status == 403
            assert not any(scopes.admits(resource, user, doc) for doc in docs)
            continue
        found = {doc["_id"] for doc in collection.find(scopes.query(resource, user))}
        admitted = {doc["_id"] for doc in docs if scopes.admits(resource, user, doc)}
        assert found == admitted, (resource, category)
        assert found and (found != {d["_id"] for d in docs}) == (SCOPES[resource][category] != scopes.EVERYTHING)


def test_the_filters_are_those_the_resources_always_used() -> None:
    manager, driver, client = caller(Category.MANAGER), caller(Category.DRIVER), caller(Category.BASE)
    assert scopes.query(Resource.ORDERS, caller(Category.ADMIN)) == {}
    assert scopes.query(Resource.ORDERS, manager) == {"organization": {"$in": [ORG_A, ORG_B]}}
    assert scopes.query(Resource.ORDERS, driver) == {"driver_id": {"$in": [ME]}}
    assert scopes.query(Resource.ORDERS, client) == {"client_id": {"$in": [ME]}}
    assert scopes.query(Resource.VEHICLE_TYPES, client) == {}
    assert scopes.query(Resource.VEHICLE_TYPES, driver) == {"organization": {"$in": [None, ORG_A, ORG_B]}}
    assert scopes.query(Resource.TICKETS, manager) == {
        "$or": [{"created_by": {"$in": [ME]}}, {"organization": {"$in": [ORG_A, ORG_B]}}]
    }
    for resource, category, message in (
        (Resource.VEHICLES, Category.BASE, "may not read vehicles"),
        (Resource.WAYBILLS_EDIT, Category.MANAGER, "may only read waybills"),
        (Resource.USERS, Category.DRIVER, "may not read other users"),
    ):
        with pytest.raises(ApiError) as refused:
            scopes.query(resource, caller(category))
        assert refused.value.status == 403 and message in refused.value.message


def test_a_user_without_organizations_reaches_none_of_theirs() -> None:
    lonely = {"_id": ME, "category": Category.MANAGER}
    assert orgs_of(lonely) == []
    assert not scopes.admits(Resource.ORGANIZATIONS_EDIT, lonely, {"_id": ORG_A})
    assert not scopes.admits(Resource.TICKETS_OPERATE, lonely, {"organization": None})
    assert scopes.admits(Resource.TICKETS, lonely, {"organization": ORG_A, "created_by": ME})
