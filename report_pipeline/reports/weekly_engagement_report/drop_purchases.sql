DROP TABLE IF EXISTS ${purchases}
