"""Payments and the rating of an order."""

from __future__ import annotations

from typing import Any

from dispatch.core.policy import roles
from dispatch.core.vocabulary import Category
from handlers.orders import OrdersBase
from models.common import parse_id
from models.payments import PaymentIn, PaymentOut, RatingIn, RatingOut

PAYMENT_OUT = PaymentOut()
RATING_OUT = RatingOut()


class OrderPaymentsHandler(OrdersBase):
    @roles(Category.BASE, Category.DRIVER, Category.MANAGER, Category.ADMIN)
    async def get(self, order_id: str) -> None:
        """An order's recorded payments, oldest first (its client, its driver, its organization's managers,
        ADMINs).
        ---
        tags: [payments]
        parameters:
          - {in: query, schema: PageQuery}
        responses:
          200:
            description: A page of payments.
            content:
              application/json: {schema: PaymentList}
        """
        page = self.page()
        docs, total = await self.services.billing.payments_of(self.current_user, parse_id(order_id), page)
        self.write_json(page.envelope(PAYMENT_OUT.dump(docs, many=True), total))

    @roles(Category.DRIVER, Category.MANAGER, Category.ADMIN)
    async def post(self, order_id: str) -> None:
        """Record a payment of a completed order: its organization's managers, its driver (cash or card taken on
        the spot) and ADMINs; clients only read them. A retry with the same Idempotency-Key is not recorded twice.
        ---
        tags: [payments]
        description: |
          Only a `completed` order takes payments (409 `order_not_completed` otherwise). The payments of an
          order never sum to more than its price, `price_estimate` (422 on `amount`); concurrent payments
          that together would exceed it are refused but for those that fit. A driver may record `cash` or
          `card` only (403 `method_forbidden`).
        parameters:
          - name: Idempotency-Key
            in: header
            schema: {type: string, maxLength: 255}
            description: The same key and body within 24 h return the first answer; another body → 409.
        requestBody:
          required: true
          content:
            application/json: {schema: PaymentIn}
        responses:
          201:
            description: The recorded payment.
            content:
              application/json: {schema: PaymentOut}
          409: {$ref: '#/components/responses/409'}
          422: {$ref: '#/components/responses/422'}
        """

        async def record() -> tuple[int, Any]:
            payment = await self.services.billing.pay(self.current_user, parse_id(order_id), self.load(PaymentIn()))
            return 201, PAYMENT_OUT.dump(payment)

        await self.answer_once(record)


class OrderRatingHandler(OrdersBase):
    @roles(Category.BASE)
    async def post(self, order_id: str) -> None:
        """Rate the driver of a completed order (its client, once).
        ---
        operationId: rateOrder
        tags: [payments]
        requestBody:
          required: true
          content:
            application/json: {schema: RatingIn}
        responses:
          201:
            description: The rating; the driver's average on their profile includes it.
            content:
              application/json: {schema: RatingOut}
          409: {$ref: '#/components/responses/409'}
        """
        rating = await self.services.billing.rate(self.current_user, parse_id(order_id), self.load(RatingIn()))
        self.write_json(RATING_OUT.dump(rating), 201)


default_handlers = [
    (r"/orders/(?P<order_id>[^/]+)/payments", OrderPaymentsHandler),
    (r"/orders/(?P<order_id>[^/]+)/rating", OrderRatingHandler),
]
