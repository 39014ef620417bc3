-- Takes a stale pending flag over for this request: sets the voter's flag
-- to this request's pending value only if it still holds the stale value
-- that was judged, so a flag that moved meanwhile (its request queued,
-- refreshed by a retry, released) is left alone.
-- KEYS[1]: the voter's flag (voted:{poll}:{voter}).
-- ARGV[1]: the stale value; ARGV[2]: this request's pending value
-- ("p:" .. request id); ARGV[3]: its TTL (ms).
-- Reply: 1 taken over, 0 the flag moved.
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
return 1
