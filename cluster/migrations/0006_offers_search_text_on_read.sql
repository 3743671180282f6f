-- The stored generated column search_tsv cost every offer write a to_tsvector() (about 8 us a row: 40 % of
-- an offer insert here) and was recomputed on every update, even a last_seen_at touch. Nothing queries it
-- in SQL since 0004 dropped its GIN index: the in-memory search index reads the lexemes, so it now computes
-- them when it reads a row (deployments/search_store.py), with the same offer_search_text() expression.
ALTER TABLE offers DROP COLUMN IF EXISTS search_tsv;
