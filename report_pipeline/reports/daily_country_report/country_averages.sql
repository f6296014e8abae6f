-- Average activity of the active users of each country, most active countries first.
SELECT u.country, avg(s.event_count) AS avg_events
FROM users u
JOIN ${summary} s ON u.id = s.user_id
GROUP BY u.country
ORDER BY avg_events DESC
