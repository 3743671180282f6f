-- Outbox batches (issue 3, ingestion throughput): a sync's price deltas are written as a few outbox rows
-- of up to 10,000 messages each (`body`: one "subject<TAB>msg_id<TAB>payload" line per message, `messages`
-- its line count) instead of one row per delta. Same transaction as the offers and history rows, so an
-- event is still never lost; each message keeps its own Nats-Msg-Id, so a relay re-publish stays
-- harmless. One row per delta cost a JSON parse and three index entries per delta, and marking them
-- published rewrote every row: about a fifth of a first load's time. Single-message rows (`payload`)
-- remain valid for other producers.
ALTER TABLE outbox ALTER COLUMN payload DROP NOT NULL;
ALTER TABLE outbox ADD COLUMN body text;
ALTER TABLE outbox ADD COLUMN messages integer NOT NULL DEFAULT 1 CHECK (messages >= 1);
ALTER TABLE outbox ADD CONSTRAINT outbox_payload_or_body CHECK ((payload IS NULL) <> (body IS NULL));
-- the lines are written once and read at most once (relay): skip compressing them
ALTER TABLE outbox ALTER COLUMN body SET STORAGE EXTERNAL;
