-- Average activity of the active users of each country; rows keyed by the saga that wrote them.
INSERT INTO reports.daily_country_report
SELECT :saga_id, :start_date, :end_date, :min_events, u.country, count(*), avg(s.event_count)
FROM analytics.users u
JOIN ${summary} s ON u.id = s.user_id
GROUP BY u.country
