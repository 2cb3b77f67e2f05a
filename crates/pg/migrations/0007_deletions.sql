-- Deletions (hydrant_index::CarCatalog::delete_car): one counter that every deletion bumps in
-- its own transaction. Replicas poll it and empty their read caches when it moves, so no
-- replica keeps serving a cached block of a deleted CAR.
CREATE TABLE car_deletions (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    seq BIGINT NOT NULL
);
INSERT INTO car_deletions (seq) VALUES (0);
