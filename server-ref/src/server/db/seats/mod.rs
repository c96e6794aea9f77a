//! Group commit for seat writes. Check-outs, check-ins and (SQLite) heartbeats of this process
//! go to one writer task; it takes every write waiting at that moment (up to [`MAX_BATCH`](writer::MAX_BATCH)),
//! runs them in one transaction, commits once and only then answers each. A durable check-out
//! still waits for its fsync, but the check-outs waiting together share one: on a disk doing
//! ~325 fsync/s, one-commit-per-check-out capped SQLite at ~400 check-outs/s
//! (docs/BENCHMARKS.md).
//!
//! Semantics are those of one transaction per write, in queue order: each write sees the
//! effects of the writes before it in the batch (a second check-out for the last seat is
//! denied; a retry with the same request id finds the lease). If anything in a batch fails, the
//! batch is rolled back and every write is run again alone, so one failing write never fails
//! another. Plain check-outs of a batch, of any licenses, are granted by a few statements
//! together ([`grant_together`](grants::grant_together)); a license's count of held leases (migration 0007) proves
//! their seats free without counting live leases.
//!
//! One writer on both engines. SQLite: it is the only seat writer of the process (what the
//! FIFO mutex did before), so writes never meet SQLite's busy handler and its sleeps; a batch
//! of heartbeats only commits on the `synchronous=NORMAL` connections (see `Db::relaxed`).
//! PostgreSQL: one writer batching every license did more check-outs per second than four
//! writers with licenses spread over them, on one license and on eight (docs/BENCHMARKS.md);
//! writes are sorted by license, check-outs first, and licenses locked in that (bytewise)
//! order, so two replicas' batches lock rows in one order. The price: a license row that
//! another transaction holds for long stalls every seat write of this process, not a quarter
//! of them. Every license write of the server is one short transaction (a batch, an
//! activation, a force-release, one license's reaping), so that wait is bounded by theirs.
//! PostgreSQL heartbeats do not come here: each is one autocommit `UPDATE` on a
//! `synchronous_commit = off` connection, concurrent with the others, which beats a serial
//! batch of them.
//!
//! Under load a batch's fixed costs are kept off its path: the writer waits briefly for a
//! batch as large as its last ([`gather`](writer::gather)). On PostgreSQL a batch of plain check-outs that all
//! find a seat is granted by one autocommit statement on a connection the writer keeps
//! ([`grant_in_one_statement`](grants::grant_in_one_statement)): one round trip instead of four, about +34 % check-outs/s
//! (docs/BENCHMARKS.md). Other batches run in a transaction begun while the last batch's
//! clients were answered ([`BEGUN_AHEAD_IDLE`](writer::BEGUN_AHEAD_IDLE)), and count granted leases inside their insert
//! ([`grant_together`](grants::grant_together)).

mod grants;
mod held;
#[cfg(test)]
mod test_support;
mod writer;
mod writes;

pub(crate) use writer::SeatWriter;

#[cfg(test)]
pub(crate) use test_support::{
    PANIC_FOR_TESTS, TRANSACTION_ONLY_FOR_TESTS, begun_ahead_for, granted_in_one_statement,
    granted_together, refused_in_one_statement,
};
