-- Offline deactivation: each machine's deactivation key (32 random bytes, base64url), handed to
-- the machine in its activation answer. An air-gapped machine MACs its deactivation receipt
-- with it (HMAC-SHA256, docs/FORMAT.md); the server checks the MAC with this column, so it
-- keeps the key itself (a hash could not check a MAC). It frees only this one machine's slot,
-- the row is deleted with the machine, and the signing keys in this database are worth more.
-- NULL for machines activated before this migration: they deactivate online or by an admin.
ALTER TABLE machines ADD COLUMN deactivation_key TEXT;
