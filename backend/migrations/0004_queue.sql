-- The waiting room (issue 14). queue: 'none' (a race, as before), 'fifo' (first come, first
-- served by arrival at the edge) or 'random' (those who joined before starts_ms + the grace
-- are shuffled at the draw, later arrivals queue behind them). admit_multiple: admissions
-- outstanding per unit left; admit_ttl_s: how long an admission lasts.
ALTER TABLE sales
  ADD COLUMN queue ENUM('none','fifo','random') NOT NULL DEFAULT 'none',
  ADD COLUMN queue_grace_s INT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN admit_multiple TINYINT UNSIGNED NOT NULL DEFAULT 1,
  ADD COLUMN admit_ttl_s INT UNSIGNED NOT NULL DEFAULT 120;
