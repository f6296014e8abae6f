CREATE TABLE IF NOT EXISTS reports.weekly_engagement_report (
    saga_id varchar,
    week_start date,
    country varchar,
    active_users bigint,
    avg_events double,
    avg_active_days double,
    purchases bigint
)
