CREATE TABLE IF NOT EXISTS reports.daily_country_report (
    saga_id varchar,
    start_date date,
    end_date date,
    min_events integer,
    country varchar,
    active_users bigint,
    avg_events double
)
