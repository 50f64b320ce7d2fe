-- The storefront lists a sale once it is published (issue 23: an operator creates a sale from
-- the desk, checks it, then publishes it). Sales created before, or through the API without
-- saying otherwise, are listed.
ALTER TABLE sales ADD COLUMN listed TINYINT UNSIGNED NOT NULL DEFAULT 1;
