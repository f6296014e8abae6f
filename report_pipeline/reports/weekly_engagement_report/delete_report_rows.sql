DELETE FROM reports.weekly_engagement_report WHERE saga_id = :saga_id
