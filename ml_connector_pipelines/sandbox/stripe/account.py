"""One Stripe account (one ``sk_test_*`` key): its objects, events and the business rules.

Every object starts as a deep copy of Stripe's own fixture (``fixtures3.json``, from stripe-mock) with
our state laid over it, so responses keep Stripe's key set and value types. Callers hold the
simulator's lock around every method here; nothing in this module does I/O.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .forms import FormError, as_bool, as_int, as_list, as_str, merge_metadata
from .search import SearchQueryError, compile_query

API_VERSION = "2026-10-28.endive"  # the version stripe-python 16 pins; stamped on events
_FIXTURES: dict[str, Any] = json.loads((Path(__file__).with_name("fixtures3.json")).read_text())["resources"]
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_REFUND_REASONS = {"duplicate", "fraudulent", "requested_by_customer"}
_MAX_ITEMS_PER_INVOICE = 250
# Keys every create/update accepts besides its own fields (the SDK may send expand on any call).
_COMMON = {"expand"}

Obj = dict[str, Any]


def template(kind: str) -> Obj:
    return copy.deepcopy(_FIXTURES[kind])


class StripeError(Exception):
    """An error answered in Stripe's shape: ``{"error": {"type", "message", "code"?, "param"?}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        validation: bool = False,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        # A parameter that fails validation: Stripe saves no idempotent answer for it (contract §2).
        self.validation = validation

    def body(self, request_id: str) -> Obj:
        error: Obj = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return {"error": error}


def missing(kind: str, object_id: str, param: str = "id") -> StripeError:
    return StripeError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def check_known(params: Obj, known: set[str]) -> None:
    for name in params:
        if name not in known and name not in _COMMON:
            raise StripeError(
                400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )


def require(params: Obj, name: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise StripeError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
    return value


def optional_text(params: Obj, name: str, current: Any) -> Any:
    """A nullable text field: absent keeps it, empty string unsets it."""
    value = as_str(params, name)
    if value is None:
        return current
    return value or None


def expanded(params: Obj, name: str) -> bool:
    return name in (as_list(params, "expand") or []) or f"data.{name}" in (as_list(params, "expand") or [])


@dataclass
class Delivery:
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    status: int | None
    error: str | None
    delivered_at: int

    @property
    def succeeded(self) -> bool:
        """Any 2xx answer counts as delivered, as for Stripe."""
        return self.status is not None and 200 <= self.status < 300


@dataclass
class SavedResponse:
    fingerprint: str
    status: int
    body: bytes


@dataclass
class Account:
    api_key: str
    rng: random.Random
    objects: dict[str, dict[str, Obj]] = field(default_factory=dict)
    deleted: dict[str, str] = field(default_factory=dict)  # id -> object name
    webhook_secrets: dict[str, str] = field(default_factory=dict)
    days_until_due: dict[str, int] = field(default_factory=dict)  # invoice id -> days, applied on finalize
    deliveries: list[Delivery] = field(default_factory=list)
    idempotency: dict[str, SavedResponse] = field(default_factory=dict)
    recent_requests: list[float] = field(default_factory=list)  # monotonic times, for the rate limit
    new_events: list[Obj] = field(default_factory=list)  # emitted by the current call, to deliver after it
    request_id: str | None = None
    idempotency_key: str | None = None
    secret_for: Callable[[str], str] = field(default=lambda url: "")

    def __post_init__(self) -> None:
        for kind in (
            "customer",
            "invoiceitem",
            "invoice",
            "payment_intent",
            "charge",
            "refund",
            "invoice_payment",
            "event",
            "webhook_endpoint",
        ):
            self.objects.setdefault(kind, {})

    # ---- helpers -------------------------------------------------------------------------------
    def token(self, length: int) -> str:
        return "".join(self.rng.choice(_ALPHABET) for _ in range(length))

    def new_id(self, prefix: str, length: int = 24) -> str:
        return f"{prefix}_{self.token(length)}"

    def get(self, kind: str, object_id: str, *, param: str = "id", label: str | None = None) -> Obj:
        obj = self.objects[kind].get(object_id)
        if obj is None:
            raise missing(label or kind, object_id, param)
        return obj

    def emit(self, event_type: str, obj: Obj, previous: Obj | None = None) -> Obj:
        event = template("event")
        data: Obj = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event.update(
            id=self.new_id("evt"),
            api_version=API_VERSION,
            created=int(time.time()),
            data=data,
            livemode=False,
            pending_webhooks=len(self.endpoints_for(event_type)),
            request={"id": self.request_id, "idempotency_key": self.idempotency_key},
            type=event_type,
        )
        self.objects["event"][event["id"]] = event
        self.new_events.append(event)
        return event

    def emit_updated(self, event_type: str, before: Obj, after: Obj) -> None:
        previous = {k: before.get(k) for k in after if before.get(k) != after.get(k)}
        if previous:
            self.emit(event_type, after, previous)

    def endpoints_for(self, event_type: str) -> list[Obj]:
        return [
            ep
            for ep in self.objects["webhook_endpoint"].values()
            if ep["status"] == "enabled"
            and ("*" in ep["enabled_events"] or event_type in ep["enabled_events"])
        ]

    def page(self, kind: str, params: Obj, url: str, keep: Callable[[Obj], bool] = lambda o: True) -> Obj:
        """Newest first, with Stripe's ``limit`` / ``starting_after`` / ``ending_before`` cursors."""
        limit = as_int(params, "limit")
        limit = 10 if limit is None else limit
        if not 1 <= limit <= 100:
            raise StripeError(
                400,
                "Invalid limit: must be between 1 and 100",
                code="parameter_invalid_integer",
                param="limit",
            )
        created = params.get("created")
        everything = list(reversed(self.objects[kind].values()))
        ids = [o["id"] for o in everything]
        after, before = as_str(params, "starting_after"), as_str(params, "ending_before")
        if after and before:
            raise StripeError(
                400, "You may only specify one of these parameters: starting_after, ending_before."
            )
        for cursor, name in ((after, "starting_after"), (before, "ending_before")):
            if cursor and cursor not in ids:
                raise missing(kind, cursor, name)
        if after:
            window = everything[ids.index(after) + 1 :]
        elif before:
            window = everything[: ids.index(before)]
        else:
            window = everything
        # Invoice items carry their timestamp as ``date``; everything else as ``created``.
        window = [o for o in window if keep(o) and _created_matches(o.get("created", o.get("date")), created)]
        chunk = window[-limit:] if before else window[:limit]
        return {"object": "list", "data": chunk, "has_more": len(window) > limit, "url": url}

    def search(self, kind: str, params: Obj, url: str, fields: set[str]) -> Obj:
        try:
            predicate = compile_query(require(params, "query"), fields)
        except SearchQueryError as exc:
            raise StripeError(400, str(exc), param="query") from None
        limit = as_int(params, "limit") or 10
        if not 1 <= limit <= 100:
            raise StripeError(400, "Invalid limit: must be between 1 and 100", param="limit")
        page_token = as_str(params, "page")
        offset = 0
        if page_token:
            if not page_token.startswith("page_") or not page_token[5:].isdigit():
                raise StripeError(400, "Invalid page token", param="page")
            offset = int(page_token[5:])
        hits = [o for o in reversed(self.objects[kind].values()) if predicate(o)]
        chunk = hits[offset : offset + limit]
        has_more = len(hits) > offset + limit
        return {
            "object": "search_result",
            "data": chunk,
            "has_more": has_more,
            "next_page": f"page_{offset + limit}" if has_more else None,
            "url": url,
        }

    # ---- customers -----------------------------------------------------------------------------
    _CUSTOMER_FIELDS = {
        "email",
        "name",
        "phone",
        "description",
        "metadata",
        "address",
        "preferred_locales",
        "tax_exempt",
        "shipping",
        "invoice_settings",
        "balance",
        "invoice_prefix",
    }

    def create_customer(self, params: Obj) -> Obj:
        check_known(params, self._CUSTOMER_FIELDS)
        customer = template("customer")
        customer.update(
            id=self.new_id("cus", 14),
            created=int(time.time()),
            currency=None,
            discount=None,
            address=None,
            shipping=None,
            email=None,
            invoice_prefix="".join(self.rng.choice("0123456789ABCDEF") for _ in range(8)),
            metadata={},
        )
        self._apply_customer(customer, params)
        self.objects["customer"][customer["id"]] = customer
        self.emit("customer.created", customer)
        return customer

    def _apply_customer(self, customer: Obj, params: Obj) -> None:
        for name in ("email", "name", "phone", "description"):
            customer[name] = optional_text(params, name, customer[name])
        customer["metadata"] = merge_metadata(customer["metadata"], params.get("metadata"))
        if "address" in params:
            customer["address"] = _address(params["address"], "address")
        if "shipping" in params:
            shipping = params["shipping"]
            if shipping == "":
                customer["shipping"] = None
            elif isinstance(shipping, dict):
                customer["shipping"] = {
                    "address": _address(shipping.get("address", ""), "shipping[address]"),
                    "name": shipping.get("name"),
                    "phone": shipping.get("phone"),
                }
        if "preferred_locales" in params:
            customer["preferred_locales"] = as_list(params, "preferred_locales")
        if params.get("tax_exempt"):
            if params["tax_exempt"] not in ("none", "exempt", "reverse"):
                raise StripeError(400, "Invalid tax_exempt", param="tax_exempt")
            customer["tax_exempt"] = params["tax_exempt"]
        balance = as_int(params, "balance")
        if balance is not None:
            customer["balance"] = balance
        if params.get("invoice_prefix"):
            customer["invoice_prefix"] = params["invoice_prefix"]
        settings = params.get("invoice_settings")
        if isinstance(settings, dict):
            customer["invoice_settings"]["footer"] = optional_text(
                settings, "footer", customer["invoice_settings"]["footer"]
            )
            customer["invoice_settings"]["default_payment_method"] = optional_text(
                settings, "default_payment_method", customer["invoice_settings"]["default_payment_method"]
            )

    def retrieve_customer(self, customer_id: str) -> Obj:
        if self.deleted.get(customer_id) == "customer":
            return {"deleted": True, "id": customer_id, "object": "customer"}
        return self.get("customer", customer_id)

    def update_customer(self, customer_id: str, params: Obj) -> Obj:
        check_known(params, self._CUSTOMER_FIELDS)
        customer = self.get("customer", customer_id)
        before = copy.deepcopy(customer)
        self._apply_customer(customer, params)
        self.emit_updated("customer.updated", before, customer)
        return customer

    def delete_customer(self, customer_id: str) -> Obj:
        customer = self.get("customer", customer_id)
        del self.objects["customer"][customer_id]
        self.deleted[customer_id] = "customer"
        self.emit("customer.deleted", customer)
        return {"deleted": True, "id": customer_id, "object": "customer"}

    def list_customers(self, params: Obj) -> Obj:
        check_known(params, {"email", "created", "limit", "starting_after", "ending_before", "test_clock"})
        email = as_str(params, "email")
        return self.page("customer", params, "/v1/customers", lambda c: email is None or c["email"] == email)

    def search_customers(self, params: Obj) -> Obj:
        check_known(params, {"query", "limit", "page"})
        return self.search(
            "customer",
            params,
            "/v1/customers/search",
            {"email", "name", "phone", "description", "metadata", "created"},
        )

    # ---- invoice items -------------------------------------------------------------------------
    _ITEM_FIELDS = {
        "customer",
        "amount",
        "currency",
        "description",
        "invoice",
        "metadata",
        "period",
        "quantity",
        "unit_amount_decimal",
        "discountable",
        "tax_rates",
        "pricing",
        "price_data",
    }

    def create_invoice_item(self, params: Obj) -> Obj:
        check_known(params, self._ITEM_FIELDS)
        customer = self.get("customer", require(params, "customer"), param="customer")
        item = template("invoiceitem")
        now = int(time.time())
        item.update(
            id=self.new_id("ii"),
            customer=customer["id"],
            date=now,
            description=None,
            invoice=None,
            metadata={},
            period={"end": now, "start": now},
            parent=None,
            quantity=1,
        )
        invoice_id = as_str(params, "invoice")
        invoice = self._draft_invoice_for_item(invoice_id, customer["id"]) if invoice_id else None
        default_currency = invoice["currency"] if invoice else customer["currency"] or "usd"
        price_data = params.get("price_data") if isinstance(params.get("price_data"), dict) else {}
        item["currency"] = (
            as_str(params, "currency") or price_data.get("currency") or default_currency
        ).lower()
        self._apply_item(item, params, require_amount=True)
        if invoice is not None:
            self._check_currency(item, invoice)
            item["invoice"] = invoice["id"]
        self.objects["invoiceitem"][item["id"]] = item
        self.emit("invoiceitem.created", item)
        if invoice is not None:
            self._refresh_invoice(invoice)
        return item

    def _draft_invoice_for_item(self, invoice_id: str, customer_id: str) -> Obj:
        invoice = self.get("invoice", invoice_id, param="invoice")
        if invoice["status"] != "draft":
            raise StripeError(
                400,
                f"Invoice {invoice_id} is not a draft; items can only be added to drafts.",
                code="invoice_not_editable",
                param="invoice",
            )
        if invoice["customer"] != customer_id:
            raise StripeError(400, "The invoice belongs to a different customer.", param="invoice")
        if len(self._items_of(invoice_id)) >= _MAX_ITEMS_PER_INVOICE:
            raise StripeError(400, "An invoice can have at most 250 invoice items.", param="invoice")
        return invoice

    def _check_currency(self, item: Obj, invoice: Obj) -> None:
        if item["currency"] != invoice["currency"]:
            raise StripeError(
                400,
                f"The currency of the invoice item ({item['currency']}) must match the "
                f"invoice's currency ({invoice['currency']}).",
                param="currency",
            )

    def _apply_item(self, item: Obj, params: Obj, *, require_amount: bool) -> None:
        amount = as_int(params, "amount")
        quantity = as_int(params, "quantity", minimum=0)
        unit = params.get("unit_amount_decimal")
        price_data = params.get("price_data")
        if isinstance(price_data, dict):  # an ad-hoc price: amount = unit amount x quantity
            unit = price_data.get("unit_amount_decimal") or price_data.get("unit_amount") or unit
        if quantity is not None:
            item["quantity"] = quantity
        if unit not in (None, ""):
            try:
                amount = round(float(unit) * item["quantity"])
            except ValueError:
                raise FormError("unit_amount_decimal", f"Invalid decimal: {unit}") from None
        if amount is None and require_amount:
            raise StripeError(
                400, "Missing required param: amount.", code="parameter_missing", param="amount"
            )
        if amount is not None:
            item["amount"] = amount
        item["net_amount"] = item["amount"]
        item["quantity_decimal"] = str(item["quantity"])
        item["pricing"] = {
            "type": "price_details",
            "unit_amount_decimal": str(item["amount"] / item["quantity"]) if item["quantity"] else None,
        }
        item["description"] = optional_text(params, "description", item["description"])
        item["metadata"] = merge_metadata(item["metadata"], params.get("metadata"))
        discountable = as_bool(params, "discountable")
        if discountable is not None:
            item["discountable"] = discountable
        period = params.get("period")
        if isinstance(period, dict):
            start, end = as_int(period, "start"), as_int(period, "end")
            item["period"] = {"end": end or item["period"]["end"], "start": start or item["period"]["start"]}

    def _editable_item(self, item_id: str) -> Obj:
        item = self.get("invoiceitem", item_id, label="invoiceitem")
        if item["invoice"] and self.objects["invoice"][item["invoice"]]["status"] != "draft":
            raise StripeError(
                400,
                "This invoice item is on an invoice that is no longer a draft and cannot be changed.",
                code="invoice_not_editable",
            )
        return item

    def update_invoice_item(self, item_id: str, params: Obj) -> Obj:
        check_known(params, self._ITEM_FIELDS - {"customer", "currency", "invoice"})
        item = self._editable_item(item_id)
        before = copy.deepcopy(item)
        self._apply_item(item, params, require_amount=False)
        self.emit_updated("invoiceitem.updated", before, item)
        if item["invoice"]:
            self._refresh_invoice(self.objects["invoice"][item["invoice"]])
        return item

    def delete_invoice_item(self, item_id: str) -> Obj:
        item = self._editable_item(item_id)
        del self.objects["invoiceitem"][item_id]
        self.deleted[item_id] = "invoiceitem"
        self.emit("invoiceitem.deleted", item)
        if item["invoice"]:
            self._refresh_invoice(self.objects["invoice"][item["invoice"]])
        return {"deleted": True, "id": item_id, "object": "invoiceitem"}

    def list_invoice_items(self, params: Obj) -> Obj:
        check_known(
            params, {"customer", "invoice", "pending", "created", "limit", "starting_after", "ending_before"}
        )
        customer, invoice, pending = (
            as_str(params, "customer"),
            as_str(params, "invoice"),
            as_bool(params, "pending"),
        )

        def keep(item: Obj) -> bool:
            return (
                (customer is None or item["customer"] == customer)
                and (invoice is None or item["invoice"] == invoice)
                and (pending is None or (item["invoice"] is None) == pending)
            )

        return self.page("invoiceitem", params, "/v1/invoiceitems", keep)

    # ---- invoices ------------------------------------------------------------------------------
    _INVOICE_FIELDS = {
        "customer",
        "auto_advance",
        "collection_method",
        "days_until_due",
        "due_date",
        "currency",
        "description",
        "metadata",
        "pending_invoice_items_behavior",
        "footer",
        "statement_descriptor",
        "default_payment_method",
    }

    def _items_of(self, invoice_id: str) -> list[Obj]:
        return [i for i in self.objects["invoiceitem"].values() if i["invoice"] == invoice_id]

    def _refresh_invoice(self, invoice: Obj) -> None:
        """Recomputes lines and totals from the attached invoice items (they only change on drafts)."""
        lines = []
        for item in self._items_of(invoice["id"]):
            line = template("line_item")
            line.update(
                id="il_" + item["id"][3:],
                amount=item["amount"],
                currency=item["currency"],
                description=item["description"],
                discountable=item["discountable"],
                invoice=invoice["id"],
                metadata=dict(item["metadata"]),
                period=dict(item["period"]),
                quantity=item["quantity"],
                quantity_decimal=item["quantity_decimal"],
                subtotal=item["amount"],
                pricing=dict(item["pricing"]),
                pretax_credit_amounts=[],
                taxes=[],
                parent={
                    "invoice_item_details": {
                        "invoice_item": item["id"],
                        "proration": False,
                        "proration_details": {"credited_items": None},
                        "subscription": None,
                    },
                    "subscription_item_details": None,
                    "type": "invoice_item_details",
                },
            )
            lines.append(line)
        total = sum(line["amount"] for line in lines)
        invoice["lines"] = {
            "data": lines[:10],
            "has_more": len(lines) > 10,
            "object": "list",
            "url": f"/v1/invoices/{invoice['id']}/lines",
        }
        due = max(total, 0)  # a negative total becomes customer credit, never a negative amount due
        invoice.update(
            subtotal=total,
            subtotal_excluding_tax=total,
            total=total,
            total_excluding_tax=total,
            amount_due=due,
            amount_remaining=max(due - invoice["amount_paid"], 0),
        )

    def create_invoice(self, params: Obj) -> Obj:
        check_known(params, self._INVOICE_FIELDS)
        customer = self.get("customer", require(params, "customer"), param="customer")
        behavior = as_str(params, "pending_invoice_items_behavior") or "exclude"
        if behavior not in ("exclude", "include"):
            raise StripeError(
                400, "Invalid pending_invoice_items_behavior", param="pending_invoice_items_behavior"
            )
        now = int(time.time())
        invoice = template("invoice")
        invoice.update(
            id=self.new_id("in"),
            amount_paid=0,
            amount_overpaid=0,
            auto_advance=False,
            created=now,
            currency=(as_str(params, "currency") or customer["currency"] or "usd").lower(),
            customer=customer["id"],
            customer_address=copy.deepcopy(customer["address"]),
            customer_email=customer["email"],
            customer_name=customer["name"],
            customer_phone=customer["phone"],
            customer_shipping=copy.deepcopy(customer["shipping"]),
            customer_tax_exempt=customer["tax_exempt"],
            due_date=None,
            effective_at=None,
            ending_balance=None,
            from_invoice=None,
            last_finalization_error=None,
            metadata={},
            next_payment_attempt=None,
            parent=None,
            period_end=now,
            period_start=now,
            shipping_cost=None,
            shipping_details=None,
            status="draft",
            total_pretax_credit_amounts=[],
            total_taxes=[],
            webhooks_delivered_at=None,
        )
        invoice["footer"] = customer["invoice_settings"]["footer"]
        self._apply_invoice(invoice, params)
        if (
            invoice["collection_method"] == "send_invoice"
            and invoice["due_date"] is None
            and as_int(params, "days_until_due") is None
        ):
            raise StripeError(
                400,
                "Invoices with collection_method send_invoice need days_until_due or due_date.",
                param="days_until_due",
            )
        self.objects["invoice"][invoice["id"]] = invoice
        if behavior == "include":
            for item in self.objects["invoiceitem"].values():
                if (
                    item["customer"] == customer["id"]
                    and item["invoice"] is None
                    and item["currency"] == invoice["currency"]
                ):
                    item["invoice"] = invoice["id"]
        self._refresh_invoice(invoice)
        self.emit("invoice.created", invoice)
        return invoice

    def _apply_invoice(self, invoice: Obj, params: Obj) -> None:
        auto_advance = as_bool(params, "auto_advance")
        if auto_advance is not None:
            invoice["auto_advance"] = auto_advance
        method = as_str(params, "collection_method")
        if method:
            if method not in ("charge_automatically", "send_invoice"):
                raise StripeError(400, f"Invalid collection_method: {method}", param="collection_method")
            invoice["collection_method"] = method
        due_date = as_int(params, "due_date")
        if due_date is not None and due_date <= int(time.time()):
            raise StripeError(
                400,
                "Invalid timestamp: must be an integer Unix timestamp in the future.",
                param="due_date",
                validation=True,
            )
        days = as_int(params, "days_until_due", minimum=0)
        if days is not None:
            self.days_until_due[invoice["id"]] = days
        if due_date is not None:
            invoice["due_date"] = due_date
        for name in ("description", "footer", "statement_descriptor", "default_payment_method"):
            invoice[name] = optional_text(params, name, invoice[name])
        invoice["metadata"] = merge_metadata(invoice["metadata"], params.get("metadata"))

    def retrieve_invoice(self, invoice_id: str) -> Obj:
        if self.deleted.get(invoice_id) == "invoice":
            return {"deleted": True, "id": invoice_id, "object": "invoice"}
        return self.get("invoice", invoice_id)

    def update_invoice(self, invoice_id: str, params: Obj) -> Obj:
        check_known(params, self._INVOICE_FIELDS - {"customer", "currency", "pending_invoice_items_behavior"})
        invoice = self.get("invoice", invoice_id)
        draft_only = set(params) - {"metadata", "description", "footer", "auto_advance", "expand"}
        if invoice["status"] != "draft" and draft_only:
            raise StripeError(
                400,
                f"You can only update {', '.join(sorted(draft_only))} on a draft invoice.",
                code="invoice_not_editable",
                param=sorted(draft_only)[0],
            )
        before = copy.deepcopy(invoice)
        self._apply_invoice(invoice, params)
        self.emit_updated("invoice.updated", before, invoice)
        return invoice

    def delete_invoice(self, invoice_id: str) -> Obj:
        invoice = self.get("invoice", invoice_id)
        self._transition(invoice, "delete", {"draft"})
        for item in self._items_of(invoice_id):
            item["invoice"] = None  # the items become pending again, ready for the next invoice
        del self.objects["invoice"][invoice_id]
        self.deleted[invoice_id] = "invoice"
        self.emit("invoice.deleted", invoice)
        return {"deleted": True, "id": invoice_id, "object": "invoice"}

    def list_invoices(self, params: Obj) -> Obj:
        check_known(
            params,
            {
                "customer",
                "status",
                "collection_method",
                "created",
                "due_date",
                "limit",
                "starting_after",
                "ending_before",
                "subscription",
            },
        )
        customer, status = as_str(params, "customer"), as_str(params, "status")
        method = as_str(params, "collection_method")

        def keep(inv: Obj) -> bool:
            return (
                (customer is None or inv["customer"] == customer)
                and (status is None or inv["status"] == status)
                and (method is None or inv["collection_method"] == method)
            )

        return self.page("invoice", params, "/v1/invoices", keep)

    def search_invoices(self, params: Obj) -> Obj:
        check_known(params, {"query", "limit", "page"})
        return self.search(
            "invoice",
            params,
            "/v1/invoices/search",
            {"customer", "status", "number", "total", "currency", "metadata", "created"},
        )

    @staticmethod
    def _transition(invoice: Obj, action: str, allowed_from: set[str]) -> None:
        if invoice["status"] not in allowed_from:
            raise StripeError(
                400,
                f"You cannot {action.replace('_', ' ')} an invoice whose status is '{invoice['status']}'.",
                code="invoice_unexpected_state",
            )

    def finalize_invoice(self, invoice_id: str, params: Obj) -> Obj:
        check_known(params, {"auto_advance"})
        invoice = self.get("invoice", invoice_id)
        self._transition(invoice, "finalize", {"draft"})
        customer = self.objects["customer"].get(invoice["customer"])
        now = int(time.time())
        sequence = customer["next_invoice_sequence"] if customer else 1
        prefix = customer["invoice_prefix"] if customer else "SANDBOX"
        if customer:
            customer["next_invoice_sequence"] += 1
        self._refresh_invoice(invoice)
        days = self.days_until_due.get(invoice["id"])
        if (
            invoice["collection_method"] == "send_invoice"
            and invoice["due_date"] is None
            and days is not None
        ):
            invoice["due_date"] = now + days * 86400
        token = self.token(32)
        invoice.update(
            status="open",
            number=f"{prefix}-{sequence:04d}",
            effective_at=now,
            ending_balance=0,
            hosted_invoice_url=f"https://invoice.stripe.com/i/acct_sandbox/test_{token}",
            invoice_pdf=f"https://pay.stripe.com/invoice/acct_sandbox/test_{token}/pdf",
        )
        invoice["status_transitions"]["finalized_at"] = now
        auto_advance = as_bool(params, "auto_advance")
        if auto_advance is not None:
            invoice["auto_advance"] = auto_advance
        self.emit("invoice.finalized", invoice)
        if invoice["amount_due"] == 0:  # Stripe marks a zero-amount invoice paid as soon as it is final
            self._mark_paid(invoice, now)
        return invoice

    def _mark_paid(self, invoice: Obj, now: int) -> None:
        invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0, attempted=True)
        invoice["status_transitions"]["paid_at"] = now
        self.emit("invoice.paid", invoice)
        self.emit("invoice.payment_succeeded", invoice)

    def pay_invoice(self, invoice_id: str, params: Obj) -> Obj:
        """Pays in full: out of band, or with a simulated succeeded card payment."""
        check_known(params, {"paid_out_of_band", "payment_method", "source", "off_session", "forgive"})
        invoice = self.get("invoice", invoice_id)
        self._transition(invoice, "pay", {"open", "uncollectible"})
        if as_bool(params, "paid_out_of_band"):
            self._mark_paid(invoice, int(time.time()))
        else:
            self.collect_invoice(invoice, as_str(params, "payment_method"))
        return invoice

    def collect_invoice(self, invoice: Obj, payment_method: str | None = None) -> dict[str, Obj]:
        """The customer pays the invoice's remaining amount: PaymentIntent + Charge + InvoicePayment."""
        self._transition(invoice, "pay", {"open", "uncollectible"})
        amount = invoice["amount_remaining"]
        customer = self.objects["customer"].get(invoice["customer"])
        intent, charge = self._succeed_payment(
            amount, invoice["currency"], customer, "Payment for Invoice", payment_method
        )
        now = int(time.time())
        payment = template("invoice_payment")
        payment.update(
            id=self.new_id("inpay"),
            amount_paid=amount,
            amount_requested=amount,
            created=now,
            currency=invoice["currency"],
            invoice=invoice["id"],
            is_default=True,
            livemode=False,
            payment={"payment_intent": intent["id"], "type": "payment_intent"},
            status="paid",
            status_transitions={"canceled_at": None, "paid_at": now},
        )
        self.objects["invoice_payment"][payment["id"]] = payment
        invoice["attempt_count"] += 1
        self._mark_paid(invoice, now)
        return {"invoice": invoice, "payment_intent": intent, "charge": charge, "invoice_payment": payment}

    def invoice_payments_of(self, invoice_id: str) -> Obj:
        payments = [
            p for p in reversed(self.objects["invoice_payment"].values()) if p["invoice"] == invoice_id
        ]
        return {
            "object": "list",
            "data": payments,
            "has_more": False,
            "url": f"/v1/invoice_payments?invoice={invoice_id}",
        }

    def simple_invoice_action(self, invoice_id: str, action: str, params: Obj) -> Obj:
        """send / void / mark_uncollectible, per the contract's transition table."""
        check_known(params, set())
        invoice = self.get("invoice", invoice_id)
        now = int(time.time())
        if action == "send":
            self._transition(invoice, "send", {"open"})
            self.emit("invoice.sent", invoice)
        elif action == "void":
            self._transition(invoice, "void", {"open", "uncollectible"})
            invoice["status"] = "void"
            invoice["status_transitions"]["voided_at"] = now
            self.emit("invoice.voided", invoice)
        else:
            self._transition(invoice, "mark_uncollectible", {"open"})
            invoice["status"] = "uncollectible"
            invoice["status_transitions"]["marked_uncollectible_at"] = now
            self.emit("invoice.marked_uncollectible", invoice)
        return invoice

    def list_invoice_payments(self, params: Obj) -> Obj:
        check_known(
            params, {"invoice", "payment", "status", "created", "limit", "starting_after", "ending_before"}
        )
        invoice = as_str(params, "invoice")
        payment = params.get("payment") if isinstance(params.get("payment"), dict) else {}
        intent = payment.get("payment_intent")

        def keep(p: Obj) -> bool:
            return (invoice is None or p["invoice"] == invoice) and (
                intent is None or p["payment"].get("payment_intent") == intent
            )

        return self.page("invoice_payment", params, "/v1/invoice_payments", keep)

    # ---- payment intents and charges ------------------------------------------------------------
    _INTENT_FIELDS = {
        "amount",
        "currency",
        "customer",
        "description",
        "metadata",
        "payment_method",
        "payment_method_types",
        "confirm",
        "receipt_email",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "capture_method",
        "automatic_payment_methods",
        "off_session",
        "return_url",
        "setup_future_usage",
    }

    def _new_intent(
        self, amount: int, currency: str, customer_id: str | None, description: str | None
    ) -> Obj:
        intent = template("payment_intent")
        intent_id = self.new_id("pi")
        intent.update(
            id=intent_id,
            amount=amount,
            amount_received=0,
            canceled_at=None,
            client_secret=f"{intent_id}_secret_{self.token(25)}",
            created=int(time.time()),
            currency=currency,
            customer=customer_id,
            description=description,
            last_payment_error=None,
            managed_payments=None,
            metadata={},
            next_action=None,
            payment_method_configuration_details=None,
            processing=None,
            shipping=None,
            transfer_data=None,
        )
        return intent

    def create_payment_intent(self, params: Obj) -> Obj:
        check_known(params, self._INTENT_FIELDS)
        amount = as_int(params, "amount", minimum=1)
        if amount is None:
            require(params, "amount")
        currency = require(params, "currency").lower()
        customer_id = as_str(params, "customer")
        if customer_id:
            self.get("customer", customer_id, param="customer")
        intent = self._new_intent(amount or 0, currency, customer_id, as_str(params, "description"))
        intent["metadata"] = merge_metadata({}, params.get("metadata"))
        intent["receipt_email"] = as_str(params, "receipt_email")
        if params.get("payment_method_types"):
            intent["payment_method_types"] = as_list(params, "payment_method_types")
            intent["automatic_payment_methods"] = None
        intent["payment_method"] = as_str(params, "payment_method")
        intent["status"] = "requires_confirmation" if intent["payment_method"] else "requires_payment_method"
        self.objects["payment_intent"][intent["id"]] = intent
        self.emit("payment_intent.created", intent)
        if as_bool(params, "confirm"):
            self.confirm_payment_intent(intent["id"], {})
        return intent

    def update_payment_intent(self, intent_id: str, params: Obj) -> Obj:
        check_known(params, self._INTENT_FIELDS - {"confirm"})
        intent = self.get("payment_intent", intent_id)
        if intent["status"] in ("succeeded", "canceled") and set(params) - {
            "metadata",
            "description",
            "expand",
        }:
            raise StripeError(
                400,
                f"This PaymentIntent's status is {intent['status']}; only metadata and "
                "description can be updated.",
                code="payment_intent_unexpected_state",
            )
        before = copy.deepcopy(intent)
        amount = as_int(params, "amount", minimum=1)
        if amount is not None:
            intent["amount"] = amount
        if params.get("currency"):
            intent["currency"] = params["currency"].lower()
        for name in ("description", "receipt_email", "payment_method", "customer"):
            intent[name] = optional_text(params, name, intent[name])
        intent["metadata"] = merge_metadata(intent["metadata"], params.get("metadata"))
        if intent["status"] == "requires_payment_method" and intent["payment_method"]:
            intent["status"] = "requires_confirmation"
        self.emit_updated("payment_intent.updated", before, intent)
        return intent

    def confirm_payment_intent(self, intent_id: str, params: Obj) -> Obj:
        check_known(params, {"payment_method", "return_url", "off_session", "receipt_email"})
        intent = self.get("payment_intent", intent_id)
        if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise StripeError(
                400,
                f"You cannot confirm this PaymentIntent because it has a status of {intent['status']}.",
                code="payment_intent_unexpected_state",
            )
        intent["payment_method"] = as_str(params, "payment_method") or intent["payment_method"]
        if not intent["payment_method"]:
            raise StripeError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
                param="payment_method",
            )
        customer = self.objects["customer"].get(intent["customer"] or "")
        self._charge_intent(intent, customer)
        return intent

    def cancel_payment_intent(self, intent_id: str, params: Obj) -> Obj:
        check_known(params, {"cancellation_reason"})
        intent = self.get("payment_intent", intent_id)
        if intent["status"] in ("succeeded", "canceled"):
            raise StripeError(
                400,
                f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}.",
                code="payment_intent_unexpected_state",
            )
        intent.update(
            status="canceled",
            canceled_at=int(time.time()),
            cancellation_reason=as_str(params, "cancellation_reason") or "requested_by_customer",
        )
        self.emit("payment_intent.canceled", intent)
        return intent

    def list_payment_intents(self, params: Obj) -> Obj:
        check_known(params, {"customer", "created", "limit", "starting_after", "ending_before"})
        customer = as_str(params, "customer")
        return self.page(
            "payment_intent",
            params,
            "/v1/payment_intents",
            lambda p: customer is None or p["customer"] == customer,
        )

    def _succeed_payment(
        self, amount: int, currency: str, customer: Obj | None, description: str, payment_method: str | None
    ) -> tuple[Obj, Obj]:
        intent = self._new_intent(amount, currency, customer["id"] if customer else None, description)
        intent["payment_method"] = payment_method or self.new_id("pm")
        self.objects["payment_intent"][intent["id"]] = intent
        charge = self._charge_intent(intent, customer)
        return intent, charge

    def _charge_intent(self, intent: Obj, customer: Obj | None) -> Obj:
        """A card payment that succeeds at once: the charge, then the intent moves to succeeded."""
        charge = template("charge")
        charge_id = self.new_id("ch")
        charge.update(
            id=charge_id,
            amount=intent["amount"],
            amount_captured=intent["amount"],
            amount_refunded=0,
            balance_transaction=self.new_id("txn"),
            calculated_statement_descriptor="SANDBOX",
            captured=True,
            created=int(time.time()),
            currency=intent["currency"],
            customer=intent["customer"],
            description=intent["description"],
            metadata=dict(intent["metadata"]),
            outcome={
                "advice_code": None,
                "network_advice_code": None,
                "network_decline_code": None,
                "network_status": "approved_by_network",
                "reason": None,
                "seller_message": "Payment complete.",
                "type": "authorized",
            },
            paid=True,
            payment_intent=intent["id"],
            payment_method=intent["payment_method"],
            receipt_email=intent["receipt_email"],
            receipt_url=f"https://pay.stripe.com/receipts/payment/{self.token(40)}",
            refunded=False,
            refunds={
                "data": [],
                "has_more": False,
                "object": "list",
                "url": f"/v1/charges/{charge_id}/refunds",
            },
            shipping=None,
            source=None,
            status="succeeded",
            transfer_data=None,
        )
        charge["billing_details"]["email"] = customer["email"] if customer else None
        charge["billing_details"]["name"] = customer["name"] if customer else None
        charge["payment_method_details"]["card"]["overcapture"]["maximum_amount_capturable"] = intent[
            "amount"
        ]
        self.objects["charge"][charge_id] = charge
        intent.update(status="succeeded", amount_received=intent["amount"], latest_charge=charge_id)
        self.emit("charge.succeeded", charge)
        self.emit("payment_intent.succeeded", intent)
        return charge

    def update_charge(self, charge_id: str, params: Obj) -> Obj:
        check_known(params, {"description", "metadata", "receipt_email"})
        charge = self.get("charge", charge_id)
        before = copy.deepcopy(charge)
        charge["description"] = optional_text(params, "description", charge["description"])
        charge["receipt_email"] = optional_text(params, "receipt_email", charge["receipt_email"])
        charge["metadata"] = merge_metadata(charge["metadata"], params.get("metadata"))
        self.emit_updated("charge.updated", before, charge)
        return charge

    def list_charges(self, params: Obj) -> Obj:
        check_known(
            params, {"customer", "payment_intent", "created", "limit", "starting_after", "ending_before"}
        )
        customer, intent = as_str(params, "customer"), as_str(params, "payment_intent")
        return self.page(
            "charge",
            params,
            "/v1/charges",
            lambda c: (
                (customer is None or c["customer"] == customer)
                and (intent is None or c["payment_intent"] == intent)
            ),
        )

    # ---- refunds -------------------------------------------------------------------------------
    def create_refund(self, params: Obj) -> Obj:
        check_known(
            params, {"charge", "payment_intent", "amount", "reason", "metadata", "instructions_email"}
        )
        charge_id, intent_id = as_str(params, "charge"), as_str(params, "payment_intent")
        if bool(charge_id) == bool(intent_id):
            raise StripeError(
                400, "You must pass either a charge or a payment_intent (not both).", param="charge"
            )
        if intent_id:
            intent = self.get("payment_intent", intent_id, param="payment_intent")
            if not intent["latest_charge"]:
                raise StripeError(
                    400,
                    f"PaymentIntent {intent_id} has no successful charge to refund.",
                    param="payment_intent",
                )
            charge_id = intent["latest_charge"]
        charge = self.get("charge", charge_id or "", param="charge")
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise StripeError(
                400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
            )
        amount = as_int(params, "amount", minimum=1)
        amount = remaining if amount is None else amount
        if amount > remaining:
            raise StripeError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
                param="amount",
            )
        reason = as_str(params, "reason")
        if reason and reason not in _REFUND_REASONS:
            raise StripeError(400, f"Invalid reason: {reason}", param="reason")
        refund = template("refund")
        refund.update(
            id=self.new_id("re"),
            amount=amount,
            balance_transaction=self.new_id("txn"),
            charge=charge["id"],
            created=int(time.time()),
            currency=charge["currency"],
            customer=charge["customer"],
            metadata=merge_metadata({}, params.get("metadata")),
            payment_intent=charge["payment_intent"],
            payment_method=charge["payment_method"],
            reason=reason or None,
            status="succeeded",
        )
        self.objects["refund"][refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        refunds = [r for r in reversed(self.objects["refund"].values()) if r["charge"] == charge["id"]]
        charge["refunds"]["data"] = refunds[:10]
        charge["refunds"]["has_more"] = len(refunds) > 10
        self.emit("charge.refunded", charge)
        self.emit("refund.created", refund)
        return refund

    def update_refund(self, refund_id: str, params: Obj) -> Obj:
        check_known(params, {"metadata"})
        refund = self.get("refund", refund_id)
        before = copy.deepcopy(refund)
        refund["metadata"] = merge_metadata(refund["metadata"], params.get("metadata"))
        self.emit_updated("refund.updated", before, refund)
        return refund

    def list_refunds(self, params: Obj) -> Obj:
        check_known(
            params, {"charge", "payment_intent", "created", "limit", "starting_after", "ending_before"}
        )
        charge, intent = as_str(params, "charge"), as_str(params, "payment_intent")
        return self.page(
            "refund",
            params,
            "/v1/refunds",
            lambda r: (
                (charge is None or r["charge"] == charge)
                and (intent is None or r["payment_intent"] == intent)
            ),
        )

    # ---- events --------------------------------------------------------------------------------
    def list_events(self, params: Obj) -> Obj:
        check_known(
            params,
            {"type", "types", "created", "delivery_success", "limit", "starting_after", "ending_before"},
        )
        single, several = as_str(params, "type"), as_list(params, "types")
        if single and several:
            raise StripeError(
                400, "You may only specify one of these parameters: type, types.", param="types"
            )
        if several is not None and len(several) > 20:
            raise StripeError(400, "You can pass at most 20 event types.", param="types")
        delivered = as_bool(params, "delivery_success")

        def type_matches(event_type: str) -> bool:
            if several is not None:
                return event_type in several
            if not single:
                return True
            if single.endswith("*"):
                return event_type.startswith(single[:-1])
            return event_type == single

        def keep(event: Obj) -> bool:
            if not type_matches(event["type"]):
                return False
            return delivered is None or (event["pending_webhooks"] == 0) == delivered

        return self.page("event", params, "/v1/events", keep)

    # ---- webhook endpoints ---------------------------------------------------------------------
    def create_webhook_endpoint(self, params: Obj) -> Obj:
        check_known(params, {"url", "enabled_events", "description", "metadata", "api_version", "connect"})
        url = require(params, "url")
        if not url.startswith(("http://", "https://")):
            raise StripeError(400, "Invalid URL: must start with http:// or https://", param="url")
        events = as_list(params, "enabled_events")
        if not events:
            raise StripeError(
                400,
                "Missing required param: enabled_events.",
                code="parameter_missing",
                param="enabled_events",
            )
        endpoint = template("webhook_endpoint")
        endpoint.update(
            id=self.new_id("we"),
            api_version=as_str(params, "api_version"),
            created=int(time.time()),
            description=as_str(params, "description"),
            enabled_events=events,
            metadata=merge_metadata({}, params.get("metadata")),
            status="enabled",
            url=url,
        )
        self.objects["webhook_endpoint"][endpoint["id"]] = endpoint
        self.webhook_secrets[endpoint["id"]] = self.secret_for(url)
        # Stripe shows the signing secret only in the creation response.
        return {**endpoint, "secret": self.webhook_secrets[endpoint["id"]]}

    def update_webhook_endpoint(self, endpoint_id: str, params: Obj) -> Obj:
        check_known(params, {"url", "enabled_events", "description", "metadata", "disabled"})
        endpoint = self.get("webhook_endpoint", endpoint_id)
        if params.get("url"):
            endpoint["url"] = params["url"]
        if params.get("enabled_events"):
            endpoint["enabled_events"] = as_list(params, "enabled_events")
        endpoint["description"] = optional_text(params, "description", endpoint["description"])
        endpoint["metadata"] = merge_metadata(endpoint["metadata"], params.get("metadata"))
        disabled = as_bool(params, "disabled")
        if disabled is not None:
            endpoint["status"] = "disabled" if disabled else "enabled"
        return endpoint

    def delete_webhook_endpoint(self, endpoint_id: str) -> Obj:
        self.get("webhook_endpoint", endpoint_id)
        del self.objects["webhook_endpoint"][endpoint_id]
        return {"deleted": True, "id": endpoint_id, "object": "webhook_endpoint"}

    # ---- state ---------------------------------------------------------------------------------
    def snapshot(self) -> Obj:
        return {
            **{f"{kind}s": list(objs.values()) for kind, objs in self.objects.items()},
            "deleted_ids": dict(self.deleted),
            "deliveries": [{**vars(d), "succeeded": d.succeeded} for d in self.deliveries],
            "idempotency_keys": len(self.idempotency),
        }


def _address(value: Any, param: str) -> Obj | None:
    if value == "":
        return None
    if not isinstance(value, dict):
        raise StripeError(400, "Invalid address: expected a hash", param=param)
    keys = ("city", "country", "line1", "line2", "postal_code", "state")
    unknown = set(value) - set(keys)
    if unknown:
        raise StripeError(
            400,
            f"Received unknown parameter: {param}[{sorted(unknown)[0]}]",
            code="parameter_unknown",
            param=f"{param}[{sorted(unknown)[0]}]",
        )
    return {k: value.get(k) or None for k in keys}


def _created_matches(created: int, condition: Any) -> bool:
    """``created=<ts>`` exact, or ``created[gt|gte|lt|lte]=<ts>``."""
    if condition is None or condition == "":
        return True
    if isinstance(condition, str):
        return created == as_int({"created": condition}, "created")
    if not isinstance(condition, dict):
        raise FormError("created", "Invalid created filter")
    checks = {"gt": created.__gt__, "gte": created.__ge__, "lt": created.__lt__, "lte": created.__le__}
    for op in condition:
        if op not in checks:
            raise FormError(f"created[{op}]", f"Received unknown parameter: created[{op}]")
        bound = as_int(condition, op)
        if bound is not None and not checks[op](bound):
            return False
    return True
