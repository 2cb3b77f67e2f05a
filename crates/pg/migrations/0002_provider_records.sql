-- Provider records (hydrant_providers::ProviderStore). Expiry is a plain BIGINT of seconds
-- since the Unix epoch, indexed so gc reads only expired rows (see the crate docs for why this
-- table is not partitioned by expiry).
CREATE TABLE provider_records (
    key        BYTEA  NOT NULL,
    provider   BYTEA  NOT NULL,
    -- The multiaddrs, each as a 2-byte big-endian length and the binary multiaddr.
    addrs      BYTEA  NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (key, provider)
);
CREATE INDEX provider_records_expires_at ON provider_records (expires_at);
