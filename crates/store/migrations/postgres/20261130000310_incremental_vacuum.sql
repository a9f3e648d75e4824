-- SQLite switches to auto_vacuum = INCREMENTAL in this version; PostgreSQL's autovacuum already
-- makes space freed by deleted rows reusable. The file keeps both backends' histories aligned.
SELECT 1;
