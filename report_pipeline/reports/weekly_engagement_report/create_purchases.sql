-- Per user: purchases in the week.
CREATE TABLE ${purchases} AS
SELECT user_id, count(*) AS purchases
FROM analytics.events
WHERE event_type = 'purchase'
  AND event_date >= :week_start AND event_date < date_add('day', 7, :week_start)
GROUP BY user_id
