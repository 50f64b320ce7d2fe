-- A shopper's orders across sales ("My orders", issue 22): by user, newest first.
ALTER TABLE orders ADD KEY by_user (user_id, id);
