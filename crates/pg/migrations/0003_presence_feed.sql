-- Presence filter support (hydrant_index::filter).
-- 1. car_multihashes lists one CAR's multihashes in byte order: index (car, multihash), which
--    also serves everything the old (car) index did.
CREATE INDEX blocks_car_multihash ON blocks (car, multihash);
DROP INDEX blocks_car;

-- 2. A commit feed: every commit_car takes the next value of car_commit_seq while holding a
--    transaction-level advisory lock, so commit sequence numbers become visible in order and a
--    replica polling "commit_seq > last seen" never skips a commit.
CREATE SEQUENCE car_commit_seq;
ALTER TABLE cars ADD COLUMN commit_seq BIGINT;
UPDATE cars SET commit_seq = nextval('car_commit_seq');
ALTER TABLE cars ALTER COLUMN commit_seq SET NOT NULL;
CREATE UNIQUE INDEX cars_commit_seq ON cars (commit_seq);
