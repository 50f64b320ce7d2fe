#!/usr/bin/env python3
"""The checker catches what it is there to catch: each rule, broken on purpose in a small
history, is reported broken; a clean history breaks none. (scripts/test runs this.)"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import checker  # noqa: E402


def buy(user, status, order_id=None, error=None, t=0):
    return {"user": user, "sale": 1, "sent_ms": t, "answered_ms": t + 5, "status": status,
            "error": error, "order_id": None if order_id is None else str(order_id)}


def run(buys, rows, stock=3, crowd=None):
    by_user = {}
    for b in buys:
        by_user.setdefault(b["user"], []).append(b)
    broken, counts = checker.check(by_user, rows, crowd or {"oversold": 0, "drift": 0, "undrained": 0}, stock)
    return {rule for rule, bad in broken.items() if bad}, counts


CLEAN = [buy(1, 200, 11), buy(2, 200, 12), buy(3, 409, error="sold_out"), buy(4, 503, t=1),
         buy(5, 0, t=2)]
CLEAN_ROWS = [(11, 1, "created"), (12, 2, "created"), (13, 4, "created")]


class Rules(unittest.TestCase):
    def test_a_clean_history_breaks_nothing(self):
        broken, counts = run(CLEAN, CLEAN_ROWS)
        self.assertEqual(broken, set())
        self.assertEqual((counts["unknown"], counts["unknown_to_order"], counts["unknown_to_nothing"]), (2, 1, 1))
        self.assertEqual(counts["unknown_span_ms"], 7 - 1)

    def test_oversold(self):
        broken, counts = run(CLEAN, CLEAN_ROWS, stock=2)
        self.assertIn("never oversold", broken)
        self.assertEqual(counts["oversold"], 1)
        broken, _ = run(CLEAN, CLEAN_ROWS, crowd={"oversold": 1, "drift": 0, "undrained": 0})
        self.assertIn("never oversold", broken)

    def test_two_orders_for_one_shopper(self):
        broken, counts = run(CLEAN, CLEAN_ROWS + [(14, 1, "created")], stock=9)
        self.assertIn("one order per shopper", broken)
        self.assertEqual(counts["duplicate_buyers"], 1)
        # A cancelled one does not count.
        broken, _ = run(CLEAN, CLEAN_ROWS + [(14, 1, "cancelled")], stock=9)
        self.assertNotIn("one order per shopper", broken)

    def test_a_queued_answer_without_its_row(self):
        broken, counts = run(CLEAN, [r for r in CLEAN_ROWS if r[0] != 12])
        self.assertIn("every queued answer is a row", broken)
        self.assertEqual(counts["acked_lost"], 1)

    def test_a_queued_answer_whose_row_is_someone_elses(self):
        rows = [(11, 1, "created"), (12, 9, "created"), (13, 4, "created")]
        broken, counts = run(CLEAN + [buy(9, 409, error="sold_out")], rows)
        self.assertIn("every queued answer is a row", broken)
        self.assertIn("no row after definite refusals", broken)
        self.assertEqual(counts["acked_lost"], 1)

    def test_a_row_after_definite_refusals_only(self):
        broken, counts = run(CLEAN, CLEAN_ROWS + [(15, 3, "created")], stock=9)
        self.assertIn("no row after definite refusals", broken)
        self.assertEqual(counts["definite_refusals_with_rows"], 1)

    def test_a_row_for_a_shopper_who_never_bought(self):
        broken, _ = run(CLEAN, CLEAN_ROWS + [(16, 77, "created")], stock=9)
        self.assertIn("no row without a buy", broken)

    def test_unknowns_left_undrained(self):
        broken, counts = run(CLEAN, CLEAN_ROWS, crowd={"oversold": 0, "drift": 0, "undrained": 1})
        self.assertIn("every unknown answer resolved", broken)
        self.assertEqual(counts["unknown_resolved"], 1)

    def test_fewer_sold_than_acknowledged(self):
        # An acknowledged order that is no longer live (cancelled under the shopper).
        buys = [buy(1, 200, 11), buy(2, 200, 12)]
        broken, _ = run(buys, [(11, 1, "cancelled"), (12, 2, "created")])
        self.assertIn("units sold within [acknowledged, acknowledged + unknown]", broken)

    def test_drift(self):
        broken, _ = run(CLEAN, CLEAN_ROWS, crowd={"oversold": 0, "drift": 2, "undrained": 0})
        self.assertIn("drift 0", broken)


if __name__ == "__main__":
    unittest.main(verbosity=1)
