"""Pydantic models of the Wise API objects the client returns (contracts/wise.md).

Only the fields we use are declared; Wise sends many more and adds new ones, so unknown fields
are ignored rather than rejected.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel


class WiseModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class Profile(WiseModel):
    id: int
    # v2 answers "BUSINESS"/"PERSONAL", legacy v1 "business"/"personal": stored upper case.
    type: str
    business_name: str | None = None
    full_name: str | None = None
    current_state: str | None = None

    @field_validator("type")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class PaymentOption(WiseModel):
    pay_in: str | None = None
    pay_out: str | None = None
    disabled: bool = False
    fee_total: Decimal | None = Field(default=None, validation_alias="fee")
    source_amount: Decimal | None = None
    target_amount: Decimal | None = None

    @field_validator("fee_total", mode="before")
    @classmethod
    def _fee_total(cls, fee: Any) -> Any:
        return fee.get("total") if isinstance(fee, dict) else fee


class Notice(WiseModel):
    text: str = ""
    type: str = "INFO"


class Quote(WiseModel):
    id: str
    source_currency: str
    target_currency: str
    source_amount: Decimal | None = None
    target_amount: Decimal | None = None
    rate: Decimal | None = None
    pay_out: str | None = None
    status: str | None = None
    expiration_time: datetime | None = None
    target_account: int | None = None
    payment_options: list[PaymentOption] = []
    notices: list[Notice] = []

    @property
    def blocked(self) -> bool:
        """A BLOCKED notice means Wise will not accept this quote for a transfer."""
        return any(notice.type == "BLOCKED" for notice in self.notices)

    def fee(self, pay_in: str = "BALANCE") -> Decimal | None:
        """The fee for paying in with `pay_in`: v3 quotes have no top-level fee (wise.md §4)."""
        for option in self.payment_options:
            if option.pay_in == pay_in and option.pay_out == self.pay_out and not option.disabled:
                return option.fee_total
        return None


class Recipient(WiseModel):
    """A recipient account, from either the v1 (create) or the v2 (read, list) representation."""

    id: int
    profile_id: int | None = Field(default=None, validation_alias=AliasChoices("profileId", "profile"))
    account_holder_name: str | None = None
    currency: str
    country: str | None = None
    # v1 says "sort_code", v2 "SortCode": kept as Wise sent it.
    type: str
    active: bool = True
    details: dict[str, Any] = {}
    hash: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _v2_name(cls, data: Any) -> Any:
        # v2 carries the holder's name as name.fullName instead of accountHolderName.
        if isinstance(data, dict) and "accountHolderName" not in data and isinstance(data.get("name"), dict):
            data = {**data, "accountHolderName": data["name"].get("fullName")}
        return data


class AllowedValue(WiseModel):
    key: str
    name: str | None = None


class RequirementField(WiseModel):
    """One input of a recipient type: an entry of ``fields[].group[]`` (wise.md §5.4)."""

    key: str
    name: str | None = None
    type: str | None = None
    required: bool = False
    refresh_requirements_on_change: bool = False
    example: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    validation_regexp: str | None = None
    values_allowed: list[AllowedValue] | None = None

    def problem(self, value: str | None) -> str | None:
        """Why Wise would refuse `value` for this field, or None."""
        if not value:
            return "is required" if self.required else None
        if self.min_length is not None and len(value) < self.min_length:
            return f"must be at least {self.min_length} characters"
        if self.max_length is not None and len(value) > self.max_length:
            return f"must be at most {self.max_length} characters"
        if self.validation_regexp and not _matches(self.validation_regexp, value):
            example = f" (e.g. {self.example})" if self.example else ""
            return f"does not match {self.validation_regexp}{example}"
        if self.values_allowed and value not in {allowed.key for allowed in self.values_allowed}:
            return "must be one of " + ", ".join(allowed.key for allowed in self.values_allowed)
        return None


def _matches(pattern: str, value: str) -> bool:
    # Wise's patterns are Java regexes; one Python cannot compile is not held against the value.
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return True


class AccountRequirement(WiseModel):
    """One recipient type Wise offers on a route, with its fields flattened out of their groups."""

    type: str
    title: str | None = None
    fields: list[RequirementField] = []

    @field_validator("fields", mode="before")
    @classmethod
    def _flatten_groups(cls, fields: Any) -> Any:
        if not isinstance(fields, list):
            return fields
        return [entry for field in fields if isinstance(field, dict) for entry in field.get("group") or []]

    def field(self, key: str) -> RequirementField | None:
        return next((field for field in self.fields if field.key == key), None)


class Transfer(WiseModel):
    id: int
    target_account: int
    quote_uuid: str | None = None
    status: str
    reference: str | None = None
    details: dict[str, Any] = {}
    # Wise sends "2017-11-24 10:47:49": no "T", no zone (UTC per Wise's examples).
    created: datetime | None = None
    source_currency: str | None = None
    source_value: Decimal | None = None
    target_currency: str | None = None
    target_value: Decimal | None = None
    customer_transaction_id: str | None = None

    @field_validator("created", mode="before")
    @classmethod
    def _wise_timestamp(cls, value: Any) -> Any:
        return value.replace(" ", "T", 1) if isinstance(value, str) else value


class Delivery(WiseModel):
    version: str
    url: str


class Subscription(WiseModel):
    id: str
    name: str
    trigger_on: str = Field(validation_alias=AliasChoices("trigger_on", "triggerOn"))
    delivery: Delivery
    created_at: str | None = Field(default=None, validation_alias=AliasChoices("created_at", "createdAt"))
