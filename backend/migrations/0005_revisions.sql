-- The third wave's sale fields. An evening of sales (issue 21): the edges learn changes, not
-- the whole list; the operator's desk (issue 23) pauses any sale; the shop page (issue 22)
-- shows each sale's own description and picture.
-- Every change to a sale (created, edited, paused, ended early) gives it the next revision
-- number, taken under the lock of the one `revs` row, so revisions are handed out in commit
-- order: an edge that has seen revision N asks for `rev > N` and misses nothing.
-- `epoch` names this database: an edge that pulled from another (a restore, a new stack)
-- starts over.
ALTER TABLE sales
  ADD COLUMN rev BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN paused TINYINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN description VARCHAR(2000) NULL,
  ADD COLUMN image_url VARCHAR(500) NULL,
  ADD KEY by_rev (rev),
  ADD KEY by_start (starts_ms);
CREATE TABLE IF NOT EXISTS revs (
  id    TINYINT UNSIGNED NOT NULL PRIMARY KEY,
  rev   BIGINT UNSIGNED  NOT NULL,
  epoch VARCHAR(32)      NOT NULL
) ENGINE=InnoDB;
UPDATE sales SET rev = id;
INSERT IGNORE INTO revs (id, rev, epoch)
  SELECT 1, COALESCE(MAX(id), 0), SUBSTRING(MD5(CONCAT(RAND(), NOW(6))), 1, 16) FROM sales;
