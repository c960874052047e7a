"""Which Wise webhook keys a tenant trusts follows the Wise environment it talks to."""

import json
from pathlib import Path

import pytest

from ml_connector_pipelines.core.webhooks import InvalidWebhook
from ml_connector_pipelines.integrations.tenancy import register_tenant, webhook_verifiers
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi

VECTOR = json.loads((Path(__file__).parents[1] / "systems/wise/wise-webhook-vector.json").read_text())


def _verify(connector, tenant: str) -> str:
    headers = {VECTOR["header"].lower(): VECTOR["signature_base64"]}
    return webhook_verifiers(connector)["wise"](tenant, headers, VECTOR["body"].encode()).event_id


@pytest.mark.parametrize(
    ("base_url", "trusted"),
    [
        ("https://api.wise-sandbox.com", True),
        ("https://api.sandbox.transferwise.tech", True),
        ("https://api.wise.com", False),  # a live tenant never trusts events signed by Wise's sandbox
        ("http://127.0.0.1:8700/wise", False),  # the simulator: only keys configured for the tenant
    ],
)
def test_wise_sandbox_signed_event_is_trusted_only_by_wise_sandbox_tenants(
    connector, base_url, trusted
) -> None:
    register_tenant(
        connector,
        "ACME",
        ionapi=sandbox_ionapi("http://127.0.0.1:8700", "ACME"),
        wise={"base_url": base_url, "token": "wise-token-for-the-test"},
    )
    if trusted:
        assert _verify(connector, "ACME")
    else:
        with pytest.raises(InvalidWebhook):
            _verify(connector, "ACME")


def test_re_adding_a_tenant_with_another_product_switches_its_adapter(connector) -> None:
    from ml_connector_pipelines.definitions import build_resources
    from ml_connector_pipelines.systems.infor.adapter import M3Adapter, SyteLineAdapter

    ionapi = sandbox_ionapi("http://127.0.0.1:8700", "ACME")
    register_tenant(connector, "ACME", ionapi=ionapi, product="m3", config={"cono": "200"})
    infor = build_resources(db_url=connector.settings.db_url)["infor"]
    first = infor.adapter("ACME")
    first.close()
    assert isinstance(first, M3Adapter)

    register_tenant(
        connector, "ACME", ionapi=ionapi, product="syteline", config={"mongoose_config": "ACME_S"}
    )

    stored = connector.state.tenants.get("ACME")
    assert stored.product == "syteline"
    assert stored.config == {"cono": "200", "mongoose_config": "ACME_S"}  # merged, no "product" key
    second = infor.adapter("ACME")
    second.close()
    assert isinstance(second, SyteLineAdapter)


def test_a_tenant_with_a_profile_id_refuses_events_of_other_profiles(connector) -> None:
    # The published test vector is about profile 0.
    for name, profile in (("ACME", 0), ("GLOBEX", 4242)):
        register_tenant(
            connector,
            name,
            ionapi=sandbox_ionapi("http://127.0.0.1:8700", name),
            wise={"base_url": "https://api.wise-sandbox.com", "token": "t", "profile_id": profile},
        )
    assert _verify(connector, "ACME")
    with pytest.raises(InvalidWebhook, match="another Wise profile"):
        _verify(connector, "GLOBEX")
