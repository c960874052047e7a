"""Infor tenant config keys (read by `adapter.open_adapter` and the adapters)."""

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
        None, description="requests per second for the tenant's gateway credential (unset: 500/min)"
    )
    page_size: PositiveInt = Field(500, description="records per page of an Infor read")
    bank_type: str = Field("2", description="CRS692MI bank account type (BKTP) of supplier accounts")
    extension_program: str = Field(
        "CUGEX1MI", description="M3 program holding the invoice extension (payout status)"
    )
    extension_get: str = Field("GetFieldValue", description="transaction reading the invoice extension")
    extension_add: str = Field("AddFieldValue", description="transaction adding the invoice extension")
    extension_change: str = Field("ChgFieldValue", description="transaction changing the invoice extension")
    ar_dimensions: list[str] = Field(
        ["1000"],
        min_length=1,
        max_length=7,
        description='accounting dimensions (AIT1..AIT7) Stripe cash is posted to, e.g. ["1010", "100"]',
    )
