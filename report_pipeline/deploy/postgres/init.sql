-- First start of the stack's PostgreSQL: the database behind Trino's `lake` catalog. (Dagster's
-- storage and the saga ledger live in POSTGRES_DB, which the image creates.)
CREATE DATABASE lake;
