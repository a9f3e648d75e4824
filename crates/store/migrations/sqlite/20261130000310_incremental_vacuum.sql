-- no-transaction
-- Every connection asks for auto_vacuum = INCREMENTAL (crates/store/src/sqlite.rs), which a new
-- database gets at creation; a database created before needs one VACUUM to switch, which
-- rewrites the file (about as long as copying it, and as much free disk again). Afterwards the
-- retention pruner gives pages freed by deleted rows back (PRAGMA incremental_vacuum).
VACUUM;
