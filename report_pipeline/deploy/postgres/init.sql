-- First start of the stack's PostgreSQL: the databases behind Trino's catalogs (Dagster's storage and
-- the saga ledger live in POSTGRES_DB, which the image creates): `lake` holds the PostgreSQL
-- connector's tables, `iceberg_catalog` Iceberg's JDBC catalog (its tables from iceberg_catalog.sql).
CREATE DATABASE lake;
CREATE DATABASE iceberg_catalog;
\connect iceberg_catalog
\i /etc/report_pipeline/iceberg_catalog.sql
