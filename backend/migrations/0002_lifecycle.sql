-- The order lifecycle: payments and the return of unpaid orders' units.
-- released_ms is set once a cancelled order's unit is back in Redis stock; a cancelled order
-- with released_ms NULL still owes its unit (the sweeper or the reconciler finishes it).
ALTER TABLE orders
  ADD COLUMN payment_id CHAR(32) NULL,
  ADD COLUMN released_ms BIGINT NULL,
  ADD KEY unreleased (status, released_ms);

-- Payments as the (simulated) provider reports them. A payment that arrives after its order
-- was closed, or for the wrong amount, is kept as refund_due: the money must go back.
CREATE TABLE IF NOT EXISTS payments (
  id           CHAR(32)        NOT NULL PRIMARY KEY,
  order_id     BIGINT UNSIGNED NOT NULL,
  amount_cents BIGINT UNSIGNED NOT NULL,
  status       ENUM('pending','succeeded','refund_due') NOT NULL DEFAULT 'pending',
  created_ms   BIGINT          NOT NULL,
  notified_ms  BIGINT          NULL,
  reason       VARCHAR(64)     NULL,
  KEY by_order (order_id),
  KEY by_status (status)
) ENGINE=InnoDB;
