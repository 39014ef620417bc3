-- Lifts a reconciliation's fence only if it still holds this token (a
-- fence that expired and was raised again by another reconciliation stays).
-- KEYS[1]: the fence (recon:fence:{poll}). ARGV[1]: the token.
-- Returns 1 when the fence was deleted, 0 otherwise.
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0
