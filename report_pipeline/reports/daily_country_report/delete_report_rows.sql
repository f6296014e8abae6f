DELETE FROM reports.daily_country_report WHERE saga_id = :saga_id
