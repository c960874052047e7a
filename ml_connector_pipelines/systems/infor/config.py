"""Infor tenant config keys (read by `adapter.open_adapter` and the adapters; defaults and sources in
the module docstrings of `adapter.py` and `m3_adapter.py`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt

from ..config_fields import SystemConfig


class InforConfig(SystemConfig):
    cono: str = Field("100", description="M3 company (CONO) every M3 call is made in")
    divi: str | None = Field(None, description="M3 division context (DIVI); `tenants add` sets AAA")
    mongoose_config: str | None = Field(
        None, description="SyteLine configuration name (X-Infor-MongooseConfig header); SyteLine requires it"
    )
    client_auth: Literal["form", "basic"] = Field(
        "form", description="how the OAuth client authenticates at the token endpoint"
    )
    rate_limit_per_second: PositiveFloat | None = Field(
        None,
        description="requests per second for the tenant's gateway credential, only lower than the "
        "default (unset: 450/min with a burst of 50, so no minute exceeds 500)",
    )
    page_size: PositiveInt = Field(500, description="records per page of an Infor read")
    bank_type: str = Field("2", description="CRS692MI bank account type (BKTP) of supplier accounts")
    extension_program: str = Field(
        "CUGEX1MI", description="M3 program holding the invoice extension (payout status)"
    )
    extension_get: str = Field("GetFieldValue", description="transaction reading the invoice extension")
    extension_add: str = Field("AddFieldValue", description="transaction adding the invoice extension")
    extension_change: str = Field("ChgFieldValue", description="transaction changing the invoice extension")
    m3_account_type_field: str = Field("BAF1", description="CRS692MI bank account field (BAF1..BAF5)")
    m3_payee_reference_type: str = Field(
        "PAY", description="CRS620MI supplier reference type (RFTY) whose EMAL is the payee's email"
    )
    m3_ap_invoice_trcd: str = Field("40", description="M3 ledger transaction code of AP invoices")
    m3_ar_invoice_trcd: str = Field("10", description="M3 ledger transaction code of AR invoices")
    m3_ar_payment_trcd: str = Field("20", description="M3 ledger transaction code of customer payments")
    m3_ar_payment_reference_column: str = Field(
        "ESCKNO", description="FSLEDG column that holds ARS040MI's CKNO"
    )
    m3_batch_payment_type: str = Field("1", description="ARS040MI BOPE of the payment batches added")
    m3_payment_batch_prefix: str = Field("9", description="first digit of the 10-digit PBIDs used")
    m3_ap_recorded_status: int = Field(
        50, description="APS450MI invoice status (SUPA) from which an AP batch counts as recorded"
    )
    m3_ap_line_accounting: Literal["reject", "derive"] = Field(
        "reject",
        description="an AP line with a GL account or cost centre is refused, or (derive) coded by M3's "
        "accounting rules",
    )
    m3_exportmi: bool = Field(
        True,
        description="false for a tenant whose MI security locks EXPORTMI (list and search transactions "
        "instead)",
    )
    m3_locked_ar_invoice_date: Literal["change_date", "invoice_date"] = Field(
        "change_date",
        description="with EXPORTMI locked, AR invoices of a day by change date (one ARS200MI/GetInvTotInfo "
        "per invoice) or by invoice date (cheaper, misses later changes to older invoices)",
    )
    m3_ap_invoice_search: str = Field(
        "TRCD:{trcd} AND LMDT:{date}",
        description="with EXPORTMI locked, the APS200MI/SearchSupInvoic query (M3 Enterprise Search) "
        "finding a day's AP invoice changes; placeholders {trcd} {date}",
    )
    m3_po_search: str = Field(
        "LMDT:{date}",
        description="with EXPORTMI locked, the PPS200MI/SearchHead query finding a day's PO changes; {date}",
    )
    m3_po_reference_search: str = Field(
        "YRE1:{reference}",
        description="with EXPORTMI locked, the PPS200MI/SearchHead query finding a PO by its external "
        "reference; {reference}",
    )
    m3_ar_payment_search: str = Field(
        "TRCD:{trcd} AND CKNO:{key}",
        description="with EXPORTMI locked, the ARS200MI/SearchInvoices query finding a posted payment by "
        "its CKNO key; {trcd} {key}",
    )
    m3_payee_email_source: Literal["cemail", "reference"] = Field(
        "cemail",
        description="payee emails from MDBREADMI/LstCEMAIL00 once per extract, or CRS620MI/LstSupplierRef "
        "per payee",
    )
    m3_payee_email_type: str = Field("02", description="CEMAIL email type (EMTP) of the payee's address")
    m3_bank_code_field: str = Field("BKNO", description="CRS692MI field holding a local bank code")
    m3_branch_code_field: str = Field("BBRN", description="CRS692MI field holding a local branch code")
    m3_clearing_number_field: str | None = Field(
        None, description="CRS692MI field holding a clearing number (none: not read)"
    )
    m3_payee_address_currencies: list[str] = Field(
        ["USD"],
        description="payee currencies whose address is read (in bulk from m3_payee_address_table with "
        'EXPORTMI, else CRS620MI/LstAddresses per payee); ["*"] for all',
    )
    m3_payee_address_type: str = Field("1", description="CRS620MI address type (ADTE) of the payee address")
    m3_payee_address_table: str = Field(
        "CIDADR",
        description="M3 supplier address file read by EXPORTMI for a page of payees [I]; empty: one "
        "CRS620MI/LstAddresses call per payee",
    )
    m3_payee_address_prefix: str = Field("SA", description="column prefix of m3_payee_address_table [I]")
    ar_dimensions: list[str] = Field(
        ["1000"],
        min_length=1,
        max_length=7,
        description='accounting dimensions (AIT1..AIT7) Stripe cash is posted to, e.g. ["1010", "100"]',
    )
