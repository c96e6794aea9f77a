-- Signing keys, shared by every replica. Exactly one `current` key signs; `previous` keys still
-- verify and stay published in the JWKS until retired; `retired` keys are unpublished (the
-- server keeps them only to read its own old records).
CREATE TABLE signing_keys (
    -- RFC 7638 thumbprint of the public key.
    kid TEXT PRIMARY KEY,
    -- PKCS#8 PEM. Whoever reads this table can sign licenses, exactly as whoever reads the
    -- key file: protect the database as you would the key.
    private_pem TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('current', 'previous', 'retired')),
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
