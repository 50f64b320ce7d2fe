-- Sales: the system of record for what is on sale. Times are epoch milliseconds (UTC).
CREATE TABLE IF NOT EXISTS sales (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  title          VARCHAR(200)    NOT NULL,
  price_cents    BIGINT UNSIGNED NOT NULL,
  stock          INT UNSIGNED    NOT NULL,
  per_user_limit TINYINT UNSIGNED NOT NULL,
  starts_ms      BIGINT          NOT NULL,
  ends_ms        BIGINT          NOT NULL,
  pay_window_s   INT UNSIGNED    NOT NULL,
  created_ms     BIGINT          NOT NULL,
  KEY by_end (ends_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Orders, written only by the order writer, in batches.
-- id = sale_id << 32 | seq, so an order's sale is known from its id (orders shard by sale).
-- live_slot equals slot while the order is live and is NULL once it is cancelled: the unique
-- key then allows at most one live order per (sale, user, slot), i.e. never more live orders
-- than the per-user limit, and makes a replayed stream entry a no-op.
CREATE TABLE IF NOT EXISTS orders (
  id          BIGINT UNSIGNED  NOT NULL PRIMARY KEY,
  sale_id     BIGINT UNSIGNED  NOT NULL,
  seq         INT UNSIGNED     NOT NULL,
  user_id     BIGINT UNSIGNED  NOT NULL,
  slot        TINYINT UNSIGNED NOT NULL,
  live_slot   TINYINT UNSIGNED NULL,
  status      ENUM('created','paid','cancelled') NOT NULL DEFAULT 'created',
  price_cents BIGINT UNSIGNED  NOT NULL,
  queued_ms   BIGINT           NOT NULL,
  created_ms  BIGINT           NOT NULL,
  pay_by_ms   BIGINT           NOT NULL,
  paid_ms     BIGINT           NULL,
  closed_ms   BIGINT           NULL,
  UNIQUE KEY one_live_order_per_slot (sale_id, user_id, live_slot),
  KEY unpaid (status, pay_by_ms)
) ENGINE=InnoDB;
