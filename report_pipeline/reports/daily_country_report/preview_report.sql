SELECT country, active_users, avg_events
FROM reports.daily_country_report
WHERE saga_id = :saga_id
ORDER BY avg_events DESC, country
