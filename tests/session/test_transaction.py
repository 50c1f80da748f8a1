from __future__ import annotations

from cdcd.session.transaction import OpenTransaction


def test_event_source_is_the_events_source_and_one_object_per_transaction() -> None:
    txn = OpenTransaction(xid=7, commit_ts_us=1_700_000_000_000_000, begin_lsn=100, final_lsn=200)
    first = txn.event_source(120, 90)
    assert first == txn.source(120, 90)
    txn.origin, txn.origin_lsn = "node_a", 55
    second = txn.event_source(140, 90)
    assert second is first
    assert second == txn.source(140, 90)
    assert (second.lsn, second.origin, second.origin_lsn, second.txid) == (140, "node_a", 55, 7)
