-- The connector's state store (ledger, audit, inbox, vault) in its own database, owned by the
-- same role as Dagster's storage; ML_CONNECTOR_DB_URL points at it.
CREATE DATABASE ml_connector OWNER dagster;
