-- The head of every audit hash chain: one row per tenant ('' for entries without a tenant). An append locks
-- its chain's row (INSERT ... ON CONFLICT DO UPDATE), links to the hash it holds and moves it forward in the
-- same transaction. A row lock, unlike a lookup of the newest audit_log row, cannot read a stale head:
-- READ COMMITTED waits and sees the committed head, REPEATABLE READ and SERIALIZABLE fail with a
-- serialization error (the caller retries) instead of forking the chain.
CREATE TABLE audit_chain_heads (
    chain       text PRIMARY KEY,
    last_id     bigint,
    hash_curr   text
);

INSERT INTO audit_chain_heads (chain, last_id, hash_curr)
SELECT DISTINCT ON (coalesce(tenant_id::text, '')) coalesce(tenant_id::text, ''), id, hash_curr
FROM audit_log
ORDER BY coalesce(tenant_id::text, ''), id DESC;
