-- Sample data for the compose stack, run once by the `trino-bootstrap` service with the Trino CLI.
-- The same shape as the local engine's sample warehouse (report_pipeline/local_trino/sample_data.py):
-- 1,000 users and 50,000 events over 2026-01-01..2026-03-31, every field a slice of a
-- multiplicative hash of the row number, so a re-run changes nothing.
CREATE SCHEMA IF NOT EXISTS lake.analytics;
CREATE SCHEMA IF NOT EXISTS lake.scratch;
CREATE SCHEMA IF NOT EXISTS lake.reports;

CREATE TABLE IF NOT EXISTS lake.analytics.users AS
SELECT
    id,
    element_at(ARRAY['US', 'DE', 'FR', 'GB', 'IN', 'BR', 'JP', 'CA', 'AU', 'ES', 'IT', 'NL'],
               CAST(h % 12 AS integer) + 1) AS country,
    date_add('day', -CAST(bitwise_right_shift(h, 8) % 720 AS integer), DATE '2026-01-01') AS signup_date,
    element_at(ARRAY['free', 'pro', 'team'], CAST(bitwise_right_shift(h, 4) % 3 AS integer) + 1) AS plan
FROM (SELECT id, (id * 2654435761) % 4294967296 AS h FROM UNNEST(sequence(0, 999)) AS ids (id)) AS hashed;

CREATE TABLE IF NOT EXISTS lake.analytics.events AS
SELECT
    i AS event_id,
    -- squaring a uniform fraction skews activity towards low user ids; in double, as the local
    -- generator computes it (`/ 10007.0` would be Trino's decimal division, rounded to one place)
    CAST(floor(power(CAST(h % 10007 AS double) / 10007, 2) * 1000) AS bigint) AS user_id,
    element_at(ARRAY['page_view', 'click', 'search', 'add_to_cart', 'purchase'],
               CAST(bitwise_right_shift(h, 3) % 5 AS integer) + 1) AS event_type,
    date_add('day', CAST(bitwise_right_shift(h, 11) % 90 AS integer), DATE '2026-01-01') AS event_date,
    date_add('second', bitwise_right_shift(h, 5) % 86400,
             CAST(date_add('day', CAST(bitwise_right_shift(h, 11) % 90 AS integer), DATE '2026-01-01')
                  AS timestamp(6))) AS event_time,
    CAST(bitwise_right_shift(h, 7) % 60000 AS integer) AS duration_ms
FROM (
    SELECT i, (i * 2654435761 + 97) % 4294967296 AS h
    FROM (
        SELECT block * 10000 + n AS i
        FROM UNNEST(sequence(0, 4)) AS blocks (block)
        CROSS JOIN UNNEST(sequence(0, 9999)) AS rows_in_block (n)
    ) AS numbered
) AS hashed;
