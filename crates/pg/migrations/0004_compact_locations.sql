-- Compact block locations (issue 15): every CAR gets a numeric id, and a location row carries
-- that id instead of the CAR key as text (a key is 73 bytes: "cars/<blake3 hex>.car"). The row
-- shrinks from about 156 to 84 bytes on the heap and each of its two indexes from about 124 to
-- 60 bytes (see the crate docs for the measurements).
--
-- Replicas of the previous version may still run during a rolling upgrade: they cannot start on
-- this schema (it is newer than theirs), and while they run
-- - their reads keep working through the view `blocks`, which has the old table's columns;
-- - their writes fail with an error (the view cannot be written, `staged_blocks` is gone), so
--   an ingest on an old replica fails and can be retried on an upgraded one; nothing is lost.
-- The SHARE lock below makes an old replica's commit wait for this migration instead of writing
-- rows that the copy would miss.
LOCK TABLE blocks IN SHARE MODE;

-- 1. Numeric CAR ids, also handed to stagings so staged rows carry the id their CAR will get.
CREATE SEQUENCE car_ids;
ALTER TABLE cars ADD COLUMN id BIGINT NOT NULL DEFAULT nextval('car_ids');
CREATE UNIQUE INDEX cars_id ON cars (id);

-- 2. Committed locations, fixed-width columns first (no alignment padding).
CREATE TABLE locations (
    car_id    BIGINT  NOT NULL,
    "offset"  BIGINT  NOT NULL,
    length    INTEGER NOT NULL,
    multihash BYTEA   NOT NULL
);
INSERT INTO locations (car_id, "offset", length, multihash)
    SELECT c.id, b."offset", b.length, b.multihash
    FROM blocks b JOIN cars c ON c.key = b.car;
ALTER TABLE locations ADD CONSTRAINT locations_pkey PRIMARY KEY (multihash, car_id);
-- One CAR's multihashes in byte order (car_multihashes, replacing a CAR's rows).
CREATE INDEX locations_car_multihash ON locations (car_id, multihash);
DROP TABLE blocks;

-- The old table's shape, for reads of replicas not yet upgraded. To be dropped by a later
-- migration once no such replica can remain.
CREATE VIEW blocks AS
    SELECT l.multihash, c.key AS car, l."offset", l.length
    FROM locations l JOIN cars c ON c.id = l.car_id;

-- 3. Stagings: each gets its id when opened, and its rows go straight into `locations` under
--    that id, invisible to lookups (which join `cars` on the id) until the commit writes the
--    CAR record with it. No staged-rows table: no second copy, sort or delete at commit. Open
--    stagings are dropped (their writers, old replicas, get NotStaged at commit and the ingest
--    is retried).
DELETE FROM stagings;
DROP TABLE staged_blocks;
ALTER TABLE stagings ADD COLUMN id BIGINT NOT NULL DEFAULT nextval('car_ids');
