//! The check that every license's count of held leases (`licenses.leases_held`, migration
//! 0007) agrees with its leases not released yet. Tests run it in-process and, through
//! `#[path]`, against the database of the real binary after a kill -9.

/// Rows (license id, its count, its leases not released) of every license that disagrees.
pub const HELD_COUNTS_THAT_DISAGREE: &str = "SELECT id, leases_held, held FROM (\
     SELECT id, leases_held, (SELECT COUNT(*) FROM leases \
     WHERE leases.license_id = licenses.id AND leases.released_at IS NULL) AS held \
     FROM licenses) AS counts WHERE leases_held <> held";
