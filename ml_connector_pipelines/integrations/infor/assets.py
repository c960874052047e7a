"""Infor extract assets (group `infor`): one per entity, partitioned tenant x modified date.

Built from the generic extract kit (`kit/extract.py`): each returns a typed DataFrame of canonical
records modified on the partition's date, with its data-quality checks. A source row the adapter could
not map, or a record missing a required field, is quarantined (left out, named, alerted) while the good
records of the day flow on; only a broken extract (duplicate keys, a source schema change) blocks.
"""

from ...systems.infor.models import APInvoice, ARInvoice, Customer, GLAccount, PurchaseOrder, Supplier
from ..kit.extract import ExtractSpec, build_extract

# Bank details stay out of the event log: of a supplier's account, the sample shows only these.
SAMPLE_BANK_COLUMNS = {"bank_account.kind", "bank_account.currency", "bank_account.country"}


def _hides_bank_details(column: str) -> bool:
    return column.startswith("bank_account.") and column not in SAMPLE_BANK_COLUMNS


AP_KEY = ["division", "supplier_id", "invoice_number", "invoice_year"]
AR_KEY = ["division", "customer_id", "invoice_number", "invoice_year"]

EXTRACTS = [
    ExtractSpec(
        asset_name="infor_suppliers",
        system="infor",
        read="suppliers",
        model=Supplier,
        key=["supplier_id"],
        required=["supplier_id", "name", "currency"],
        currencies=["currency", "bank_account.currency"],
        description="Suppliers (with their bank account) changed on the partition date.",
        sample_hides=_hides_bank_details,
    ),
    ExtractSpec(
        asset_name="infor_customers",
        system="infor",
        read="customers",
        model=Customer,
        key=["customer_id"],
        required=["customer_id", "name", "currency"],
        currencies=["currency"],
        description="Customers changed on the partition date.",
    ),
    ExtractSpec(
        asset_name="infor_ap_invoices",
        system="infor",
        read="ap_invoices",
        model=APInvoice,
        key=AP_KEY,
        required=[*AP_KEY, "currency", "amount", "status"],
        currencies=["currency"],
        amounts=["amount"],
        description="Supplier (AP) invoices changed on the partition date, open and closed.",
    ),
    ExtractSpec(
        asset_name="infor_ar_invoices",
        system="infor",
        read="ar_invoices",
        model=ARInvoice,
        key=AR_KEY,
        required=[*AR_KEY, "currency", "amount", "status"],
        currencies=["currency"],
        amounts=["amount", "open_amount"],
        description="Customer (AR) invoices changed on the partition date, open and closed.",
    ),
    ExtractSpec(
        asset_name="infor_purchase_orders",
        system="infor",
        read="purchase_orders",
        model=PurchaseOrder,
        key=["po_number"],
        required=["po_number", "supplier_id", "currency"],
        currencies=["currency"],
        description="Purchase orders (with lines) changed on the partition date.",
    ),
    ExtractSpec(
        asset_name="infor_gl_accounts",
        system="infor",
        read="gl_accounts",
        model=GLAccount,
        key=["dimension", "account_id"],
        required=["dimension", "account_id"],
        description="GL accounts / accounting identities changed on the partition date.",
    ),
]

infor_extracts = [build_extract(spec) for spec in EXTRACTS]
