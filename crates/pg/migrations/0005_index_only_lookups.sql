-- Index-only lookups (issue 15): the primary key also carries each location's offset and
-- length, so a lookup reads one B-tree descent and never the table's heap. At 10^8 rows the
-- table and its two indexes (26 GB) outgrew this machine's 24 GiB, and most random lookups paid
-- for a primary-key leaf and a heap page not in memory; now the working set of lookups is the
-- primary key alone (about 90 bytes a row). See BENCHMARKS.md, "Scale".
--
-- CREATE INDEX takes a SHARE lock: replicas keep reading (lookups use the old primary key
-- meanwhile) and their writes wait. It sorts every row once, about 1 minute per 10^7 rows here
-- (2 cores), with maintenance_work_mem raised for this transaction only. The swap of the
-- constraint that follows is instant.
SET LOCAL maintenance_work_mem = '256MB';
CREATE UNIQUE INDEX locations_lookup ON locations (multihash, car_id) INCLUDE ("offset", length);
ALTER TABLE locations
    DROP CONSTRAINT locations_pkey,
    ADD CONSTRAINT locations_pkey PRIMARY KEY USING INDEX locations_lookup;

-- An index-only scan reads the heap for rows on pages not yet marked all-visible, which only
-- VACUUM marks. Rows are only ever inserted in bulk, so vacuum after every 1 % of new rows
-- (PostgreSQL's default, 20 %, would leave up to 2 * 10^7 rows of a 10^8-row table needing heap
-- reads). Vacuuming an insert-only table visits only the new pages.
ALTER TABLE locations SET (autovacuum_vacuum_insert_scale_factor = 0.01);
