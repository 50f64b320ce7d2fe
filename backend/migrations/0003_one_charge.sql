-- One charge per order, and refunds confirmed by the provider.
-- started_for is the order id for a payment started through POST /api/orders/{id}/pay and
-- NULL for payments the provider reports on its own: the unique key makes a second pay call
-- (a double click, a retry, another backend) find the first payment instead of charging again.
-- A refund_due payment is refunded through the provider (refund_requested_ms) and becomes
-- refunded when the provider's signed confirmation arrives (refunded_ms).
ALTER TABLE payments
  MODIFY status ENUM('pending','succeeded','refund_due','refunded') NOT NULL DEFAULT 'pending',
  ADD COLUMN started_for BIGINT UNSIGNED NULL,
  ADD COLUMN refund_requested_ms BIGINT NULL,
  ADD COLUMN refunded_ms BIGINT NULL,
  ADD UNIQUE KEY one_charge_per_order (started_for);
