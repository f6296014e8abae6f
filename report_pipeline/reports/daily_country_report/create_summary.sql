-- Events per user in the date range, keeping users above the activity threshold.
CREATE TABLE ${summary} AS
SELECT user_id, count(*) AS event_count
FROM analytics.events
WHERE event_date BETWEEN :start_date AND :end_date
GROUP BY user_id
HAVING count(*) > :min_events
