-- The newest day whose events are complete: the day before the newest day with any events.
SELECT max(event_date) FROM analytics.events
WHERE event_date < (SELECT max(event_date) FROM analytics.events)
