-- The writer's fence across Redis failovers (docs/partitions.md). A rebuild of a sale's Redis
-- state from MariaDB raises its generation here *before* it reads the orders; the rebuilt
-- Redis carries the new generation ({sale:ID}:gen); a writer inserts a batch only while the
-- generation it read together with the entries is still current (the check and the insert are
-- one statement, which locks this row). So an insert from entries read on an old master
-- (cut off, then demoted) either landed before the rebuild read MariaDB, and is counted, or is
-- refused, even when it reaches MariaDB long after it was sent.
-- No row: generation 0 (a sale never rebuilt).
CREATE TABLE IF NOT EXISTS sale_fences (
  sale_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  gen     BIGINT UNSIGNED NOT NULL
) ENGINE=InnoDB;
