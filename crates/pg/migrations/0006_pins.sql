-- Pins (issue 16): the root CIDs whose DAGs Hydrant keeps, shared by every replica.
-- `cid` is the CID's binary form (a CIDv0 and a CIDv1 of one multihash are two pins, as in
-- Kubo); `created_at` is when it was first pinned, seconds since the Unix epoch.
CREATE TABLE pins (
    cid        BYTEA  PRIMARY KEY,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
