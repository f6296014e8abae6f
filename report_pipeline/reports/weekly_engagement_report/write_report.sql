-- Join the two aggregates per country; rows keyed by the saga that wrote them.
INSERT INTO reports.weekly_engagement_report
SELECT :saga_id, :week_start, u.country, count(*), avg(a.events), avg(a.active_days),
       sum(coalesce(p.purchases, 0))
FROM ${activity} a
JOIN analytics.users u ON u.id = a.user_id
LEFT JOIN ${purchases} p ON p.user_id = a.user_id
GROUP BY u.country
