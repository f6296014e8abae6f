SELECT country, active_users, avg_events, avg_active_days, purchases
FROM reports.weekly_engagement_report
WHERE saga_id = :saga_id
ORDER BY active_users DESC, country
