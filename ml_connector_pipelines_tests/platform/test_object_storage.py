"""Asset values in S3 when ML_CONNECTOR_IO_S3_BUCKET is set: written by a real run, read back.

The S3 here is moto's server, an S3-compatible HTTP endpoint on loopback (as MinIO would be);
boto3 talks to it over real HTTP through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import dagster as dg
import pytest
from moto.server import ThreadedMotoServer

from ml_connector_pipelines.integrations.infor.assets import infor_extracts
from ml_connector_pipelines.integrations.partitions import partition_key
from ml_connector_pipelines.integrations.storage import io_manager_from_env

from ..conftest import TenantEnv, free_port

BUCKET = "ml-connector-io"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_without_a_bucket_the_default_io_manager_stays() -> None:
    assert io_manager_from_env({}) == {}


def test_an_extract_run_stores_its_frame_in_the_bucket(tenant: TenantEnv, s3_endpoint: str) -> None:
    env = {"ML_CONNECTOR_IO_S3_BUCKET": BUCKET, "AWS_ENDPOINT_URL": s3_endpoint, "AWS_REGION": "eu-west-1"}
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="eu-west-1")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    extract = next(a for a in infor_extracts if a.key.path[-1] == "infor_suppliers")
    today = datetime.now(UTC).date()

    result = dg.materialize(
        [extract],
        partition_key=partition_key(tenant.name, today),
        instance=tenant.instance,
        resources={**tenant.resources, **io_manager_from_env(env)},
    )

    assert result.success
    (event,) = result.get_asset_materialization_events()
    rows = event.materialization.metadata["row_count"].value
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]]
    (stored,) = [k for k in keys if "infor_suppliers" in k]
    assert stored.startswith("dagster/io/") and tenant.name in stored and today.isoformat() in stored
    frame = pickle.loads(client.get_object(Bucket=BUCKET, Key=stored)["Body"].read())
    assert len(frame) == rows > 0
