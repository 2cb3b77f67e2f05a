-- Block index (hydrant_index::BlockIndex). Text keys use the "C" collation so that ordering is
-- byte order whatever the database's default collation.

-- Committed CAR records, one per CAR key.
CREATE TABLE cars (
    key         TEXT COLLATE "C" PRIMARY KEY,
    version     SMALLINT NOT NULL,
    roots       TEXT[]   NOT NULL,
    size        BIGINT   NOT NULL,
    blocks      BIGINT   NOT NULL,
    block_bytes BIGINT   NOT NULL,
    ingested_at BIGINT   NOT NULL
);

-- Committed locations: one row per (block, CAR). Only commit_car writes here.
CREATE TABLE blocks (
    multihash BYTEA            NOT NULL,
    car       TEXT COLLATE "C" NOT NULL,
    "offset"  BIGINT           NOT NULL,
    length    INTEGER          NOT NULL,
    PRIMARY KEY (multihash, car)
);
-- Replacing or removing one CAR's rows.
CREATE INDEX blocks_car ON blocks (car);

-- Open stagings: a CAR key is staged from its first stage_blocks until commit/abort/recover.
CREATE TABLE stagings (
    car       TEXT COLLATE "C" PRIMARY KEY,
    opened_at TIMESTAMPTZ      NOT NULL DEFAULT now()
);

-- Staged rows, loaded with COPY (binary); invisible to lookups. `seq` orders duplicates of a
-- multihash within one CAR (the last staged wins at commit).
CREATE TABLE staged_blocks (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY,
    car       TEXT COLLATE "C" NOT NULL,
    multihash BYTEA            NOT NULL,
    "offset"  BIGINT           NOT NULL,
    length    INTEGER          NOT NULL
);
CREATE INDEX staged_blocks_car ON staged_blocks (car);
