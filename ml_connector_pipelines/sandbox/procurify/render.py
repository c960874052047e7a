"""The simulator's records in the shapes Procurify's OpenAPI document gives them (only listed fields;
every required one present). Money on POs and order items is a decimal string, bill totals numbers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .seed import Record

Json = dict[str, Any]
# [I] every seeded user, address and branch shares these; Procurify's own values are not documented.
BRANCH_NAMES = {1: "Head office", 2: "Plant"}


def money(value: Decimal, places: int = 2) -> str:
    return f"{value:.{places}f}"


class Renderer:
    """Looks records up by id in one domain's dataset while rendering."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def _by_id(self, table: str, record_id: int) -> Record:
        return next(r for r in getattr(self.data, table) if r["id"] == record_id)

    # Reference objects -------------------------------------------------------------------------------

    def currency_summary(self, currency_id: int) -> Json:
        c = self._by_id("currencies", currency_id)
        return {"id": c["id"], "name": c["name"], "rate": c["rate"], "base": c["base"]}

    def currency(self, currency_id: int) -> Json:
        c = self._by_id("currencies", currency_id)
        return {**self.currency_summary(currency_id), "description": c["name"], "active": True}

    def simple_currency(self, currency_id: int) -> Json:
        c = self._by_id("currencies", currency_id)
        return {"id": c["id"], "name": c["name"], "rate": c["rate"]}

    def vendor(self, vendor_id: int) -> Json:
        """VendorRead (nested in POs and bills)."""
        v = self._by_id("vendors", vendor_id)
        return {
            "id": v["id"],
            "name": v["name"],
            "active": v["active"],
            "addressLineOne": v["addressLineOne"],
            "postalCode": v["postalCode"],
            "city": v["city"],
            "country": v["country"],
            "email": v["email"],
            "external_id": v["external_id"],
            "dateModified": v["dateModified"],
            "currency": v["currency"],
            "type": v["type"],
        }

    def optimized_vendor(self, vendor: Record) -> Json:
        """OptimizedVendor (the vendor list): its overall_score is a decimal string or null."""
        return {**self.vendor(vendor["id"]), "overall_score": None}

    def account_code(self, code: Record) -> Json:
        return {
            "id": code["id"],
            "code": code["code"],
            "description": code["description"],
            "account_type": code["account_type"],
            "active": code["active"],
            "parent": code["parent"],
            "code_length": code["code_length"],
        }

    def department_summary(self, department_id: int) -> Json:
        d = self._by_id("departments", department_id)
        return {
            "id": d["id"],
            "name": d["name"],
            "active": d["active"],
            "external_id": d["external_id"],
            "branch": {"id": d["location"], "name": BRANCH_NAMES.get(d["location"], "Branch")},
        }

    def department(self, department: Record) -> Json:
        """DepartmentRead (the department list): its branch is a LocationSimple."""
        summary = self.department_summary(department["id"])
        location = self._by_id("locations", department["location"])
        return {
            **summary,
            "branch": {
                "id": location["id"],
                "name": location["name"],
                "headquarter": location["headquarter"],
            },
        }

    def account(self, account_id: int) -> Json:
        """AccountRead: one budget line, account code x department."""
        a = self._by_id("accounts", account_id)
        return {
            "id": a["id"],
            "account_code": self.account_code(self._by_id("account_codes", a["account_code"])),
            "department": self.department_summary(a["department"]),
            "active": True,
        }

    def user(self, user_id: int) -> Json:
        """UserSummary."""
        u = self._by_id("users", user_id)
        return {
            "id": u["id"],
            "user": u["id"],
            "firstName": u["firstName"],
            "lastName": u["lastName"],
            "email": u["email"],
            "department": self.department_summary(u["department"]),
            "is_active": True,
        }

    def simple_user(self, user_id: int) -> Json:
        u = self._by_id("users", user_id)
        return {"id": u["id"], "firstName": u["firstName"], "lastName": u["lastName"], "email": u["email"]}

    @staticmethod
    def address(name: str) -> Json:
        return {
            "name": name,
            "addressLineOne": "1 Procurement Way",
            "postalCode": "10001",
            "city": "Springfield",
            "country": "US",
        }

    def location(self, location: Record) -> Json:
        """LocationView."""
        return {
            "id": location["id"],
            "name": location["name"],
            "currency": self.currency(location["currency"]),
            "phoneOne": "555-0100",
            "primary_billing_address": self.address(location["name"]),
            "primary_shipping_address": self.address(location["name"]),
            "shipping_addresses": [],
            "headquarter": location["headquarter"],
            "department_count": sum(1 for d in self.data.departments if d["location"] == location["id"]),
            "active": True,
            "external_id": location["external_id"],
        }

    # Purchase orders -------------------------------------------------------------------------------

    @staticmethod
    def _po_total(po: Record) -> Decimal:
        return sum((line["quantity"] * line["price"] for line in po["lines"]), Decimal(0))

    def purchase_order(self, po: Record) -> Json:
        """PurchaseOrderDocs (the list item)."""
        vendor = self._by_id("vendors", po["vendor"])
        total = money(self._po_total(po))
        buyer = self.address("Head office")
        return {
            "version": 1,
            "number": po["number"],
            "uuid": po["uuid"],
            "purchaser": self.user(po["purchaser"]),
            "procurify_PO": po["procurify_PO"],
            "PO_Num": po["number"],
            "date": po["date"],
            "buyer_name": "Head office",
            "buyer_contact": "Accounts payable",
            "buyer_addressLineOne": buyer["addressLineOne"],
            "buyer_postalCode": buyer["postalCode"],
            "buyer_city": buyer["city"],
            "buyer_country": buyer["country"],
            "buyer_address": buyer,
            "receiver_name": "Receiving",
            "receiver_contact": "Warehouse",
            "receiver_addressLineOne": buyer["addressLineOne"],
            "receiver_postalCode": buyer["postalCode"],
            "receiver_city": buyer["city"],
            "receiver_country": buyer["country"],
            "receiver_address": self.address("Receiving"),
            "pref_vendor": self.vendor(vendor["id"]),
            "vendor_name": vendor["name"],
            "payment_terms": "Net 30",
            "shipping_terms": "FOB",
            "shipping_method": "Ground",
            "promise_date": po["promise_date"],
            "subtotal": total,
            "total": total,
            "purchased_currency": self.currency_summary(po["currency"]),
            "active": po["state"] != 1,
            "state": po["state"],
            "fulfilment_status": po["fulfilment_status"],
            "last_modified": po["last_modified"],
            "item_count": len(po["lines"]),
            "contract": {"id": 0, "uuid": "", "name": ""},  # [I] required, but POs here have no contract
        }

    def po_line(self, po: Record, line: Record) -> Json:
        """PurchaseOrderLineItemRead (a PO detail's order_items)."""
        account = self.account(line["account"])
        return {
            "id": line["id"],
            "PO": [po["procurify_PO"]],
            "PO_line_num": line["PO_line_num"],
            "account": account,
            "accountCode": account["account_code"]["code"],
            "approved_datetime": line["approved_datetime"],
            "approved_price": money(line["price"]),
            "approved_quantity": float(line["quantity"]),
            "attachments": [],
            "catalog_item": None,
            "currency": self.currency_summary(po["currency"]),
            "item_attachments": [],
            "last_modified": po["last_modified"],
            "name": line["name"],
            "num": f"{po['procurify_PO']}-{line['PO_line_num']}",
            "pref_vendor": self.vendor(po["vendor"]),
            "price": money(line["price"]),
            "purchase_order": po["procurify_PO"],
            "purchaser": self.user(po["purchaser"]),
            "quantity": float(line["quantity"]),
            "receivedFailQty": 0.0,
            "receivedPassQty": 0.0,
            "recurrence": None,
            "sku": line["sku"],
            "total_cost": money(line["quantity"] * line["price"]),
            "unit": line["unit"],
            "type": 0,
        }

    def purchase_order_detail(self, po: Record) -> Json:
        """PurchaseOrderDetail: the list item plus its order items; shipping_method is an object here."""
        return {
            **self.purchase_order(po),
            "shipping_method": {"id": 1, "name": "Ground", "active": True},
            "payment_term": {"id": 1, "name": "Net 30", "active": True},
            "shipping_term": {"id": 1, "name": "FOB", "active": True},
            "creditcard": None,
            "creditcard_is_editable": False,
            "order_items": [self.po_line(po, line) for line in po["lines"]],
        }

    def order_item(self, po: Record, line: Record) -> Json:
        """OrderItem (the order-items list): related objects as ids, quantities as decimal strings."""
        account = self._by_id("accounts", line["account"])
        code = self._by_id("account_codes", account["account_code"])
        return {
            "id": line["id"],
            "PO": [po["procurify_PO"]],
            "PO_line_num": line["PO_line_num"],
            "account": account["id"],
            "accountCode": code["code"],
            "approved_datetime": line["approved_datetime"],
            "approved_price": money(line["price"]),
            "approved_quantity": money(line["quantity"]),
            "currency": po["currency"],
            "last_modified": po["last_modified"],
            "name": line["name"],
            "num": f"{po['procurify_PO']}-{line['PO_line_num']}",
            "pref_vendor": po["vendor"],
            "price": money(line["price"]),
            "purchase_order": po["procurify_PO"],
            "purchaser": po["purchaser"],
            "quantity": money(line["quantity"]),
            "sku": line["sku"],
            "status": 2,  # RECEIVE_PENDING: the item is on a PO [C contract 3.2]
            "total_cost": money(line["quantity"] * line["price"]),
            "unit": line["unit"],
            "type": 0,
        }

    # Bills -----------------------------------------------------------------------------------------

    @staticmethod
    def bill_total(bill: Record) -> Decimal:
        return sum((item["amount"] for item in bill["items"]), Decimal(0))

    def simple_bill(self, bill: Record) -> Json:
        """SimpleBill (the bill list)."""
        vendor = self._by_id("vendors", bill["vendor"])
        return {
            "version": 1,
            "id": bill["id"],
            "uuid": bill["uuid"],
            "status": bill["status"],
            "locked": False,
            "currency": self.simple_currency(bill["currency"]),
            "items": [item["id"] for item in bill["items"]],
            "vendor": {"id": vendor["id"], "name": vendor["name"]},
            "due_date": bill["due_date"],
            "total_cost_with_tax": float(self.bill_total(bill)),
            "invoice_date": bill["invoice_date"],
            "last_modified_datetime": bill["last_modified_datetime"],
            "submitted_date": bill["submitted_date"],
            "gl_post_date": None,
            "invoice_number": bill["invoice_number"],
            "type": bill["type"],
            "user": {**self.simple_user(bill["user"])},
            "approver": None,
            "past_due": False,
            "payment_uuid": None,
        }

    def bill_item(self, bill: Record, item: Record) -> Json:
        """ItemReadSerializer_v2 with one cost allocation carrying the GL coding."""
        quantity = item["quantity"]
        return {
            "id": item["id"],
            "description": item["description"],
            "expense": None,
            "bill": bill["id"],
            "vendor": self.vendor(bill["vendor"]),
            "sku": item["sku"],
            "unit": item["unit"],
            "quantity": money(quantity),
            "currency": self.currency(bill["currency"]),
            "total_cost": float(item["amount"]),
            "cost_allocations": [
                {
                    "id": item["id"],
                    "budget": self.account(item["account"]),
                    "amount": money(item["amount"]),
                    "currency": self.currency(bill["currency"]),
                }
            ],
            "creditcard_item": None,
            "unit_cost": float(item["amount"] / quantity),
            "total_cost_with_tax": float(item["amount"]),
        }

    def bill(self, bill: Record) -> Json:
        """BillRead (the bill detail)."""
        vendor = self._by_id("vendors", bill["vendor"])
        total = float(self.bill_total(bill))
        return {
            "version": 1,
            "id": bill["id"],
            "uuid": bill["uuid"],
            "user": self.user(bill["user"]),
            "vendor": self.vendor(vendor["id"]),
            "approver": None,
            "items": [self.bill_item(bill, item) for item in bill["items"]],
            "costs": [],
            "invoice_attachments": [],
            "bill_statuses": [],
            "currency": self.currency(bill["currency"]),
            "subtotal_cost": total,
            "total_cost": total,
            "total_cost_with_tax": total,
            "locked": False,
            "vendor_name": vendor["name"],
            "last_modified_datetime": bill["last_modified_datetime"],
            "submitted_date": bill["submitted_date"],
            "invoice_number": bill["invoice_number"],
            "invoice_date": bill["invoice_date"],
            "due_date": bill["due_date"],
            "payment_terms": "Net 30",
            "status": bill["status"],
            "type": bill["type"],
            "active": True,
            "gl_post_date": None,
            "added_purchase_orders": [],
        }
