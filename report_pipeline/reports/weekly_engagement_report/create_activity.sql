-- Per user: events and distinct active days in the week.
CREATE TABLE ${activity} AS
SELECT user_id, count(*) AS events, count(DISTINCT event_date) AS active_days
FROM analytics.events
WHERE event_date >= :week_start AND event_date < date_add('day', 7, :week_start)
GROUP BY user_id
HAVING count(DISTINCT event_date) >= :min_active_days
