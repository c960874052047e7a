"""Where the IO manager keeps asset values between steps and runs.

By default Dagster's filesystem IO manager writes under the instance's storage folder, which the
production dagster.yaml puts on a volume every container mounts. With ML_CONNECTOR_IO_S3_BUCKET
set, values go to S3 (or any S3-compatible store: AWS_ENDPOINT_URL) instead, so run pods need no
shared volume. Credentials come the usual boto3 way (IAM role, or AWS_* variables).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_S3_PREFIX = "dagster/io"


def io_manager_from_env(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """`{"io_manager": ...}` for S3 when a bucket is configured, else `{}` (Dagster's default)."""
    env = os.environ if environ is None else environ
    bucket = env.get("ML_CONNECTOR_IO_S3_BUCKET", "")
    if not bucket:
        return {}
    from dagster_aws.s3 import S3PickleIOManager, S3Resource

    s3 = S3Resource(
        endpoint_url=env.get("AWS_ENDPOINT_URL") or None, region_name=env.get("AWS_REGION") or None
    )
    prefix = env.get("ML_CONNECTOR_IO_S3_PREFIX") or DEFAULT_S3_PREFIX
    return {"io_manager": S3PickleIOManager(s3_resource=s3, s3_bucket=bucket, s3_prefix=prefix)}
