-- IPNI publishing (hydrant_index::IpniStore): where the advertisement chain stands. The blocks
-- (advertisements, entry chunks) are objects in the shared store; only the head and the set of
-- advertised CARs live here, moved together by a compare-and-swap on `head`.
CREATE TABLE ipni_head (
    only_row   BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    head       BYTEA  NOT NULL,
    ads        BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- CARs the chain advertises (added, not removed since), with the CID of the advertisement
-- that added each. "C" collation: pages in byte order, like `cars`.
CREATE TABLE ipni_cars (
    car TEXT COLLATE "C" PRIMARY KEY,
    ad  BYTEA NOT NULL
);
