-- Staged key rotation: a `staged` key is published in the JWKS (so the vendor can ship it in
-- the next app release) but does not sign until it is promoted to `current`, by an operator
-- or at `promote_at` (Unix seconds), never before it has been published for the server's
-- minimum publication time. SQLite cannot change a CHECK constraint in place: the table is
-- rebuilt (the same statements run on PostgreSQL).
CREATE TABLE signing_keys_0011 (
    -- RFC 7638 thumbprint of the public key.
    kid TEXT PRIMARY KEY,
    -- PKCS#8 PEM. Whoever reads this table can sign licenses, exactly as whoever reads the
    -- key file: protect the database as you would the key.
    private_pem TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('staged', 'current', 'previous', 'retired')),
    -- When the key was created; for a staged key, when it was first published.
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    -- A staged key's planned promotion (NULL: only when an operator promotes it).
    promote_at BIGINT
);
INSERT INTO signing_keys_0011 (kid, private_pem, status, created_at, retired_at)
    SELECT kid, private_pem, status, created_at, retired_at FROM signing_keys;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_0011 RENAME TO signing_keys;
