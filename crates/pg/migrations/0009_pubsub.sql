-- Pub/sub fan-out between replicas (pubsub_bus.rs): a message too large for one NOTIFY payload
-- (8,000 bytes) is stored here and its id notified. Rows are deleted after a short retention
-- (BusConfig::retention) by every replica's sender, so the table stays small.
CREATE TABLE pubsub_messages (
    id         BIGSERIAL PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    body       BYTEA NOT NULL
);
CREATE INDEX pubsub_messages_created_at ON pubsub_messages (created_at);
