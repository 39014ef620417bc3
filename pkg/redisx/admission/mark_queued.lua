-- Sets the voter's flag to this request's queued value, unless a queued
-- flag (any request's) is there already; it replaces a pending one. When
-- ARGV[3] is "pending", it sets nothing where there is no flag: the mark of
-- a queued request can run after the worker refused the vote and released
-- its flag, and must not then lock the voter out.
-- KEYS[1]: the voter's flag (voted:{poll}:{voter}).
-- ARGV[1]: the queued value ("q:" .. request id); ARGV[2]: its TTL (ms);
-- ARGV[3]: "pending" (replace a pending flag only) or "any".
local v = redis.call("GET", KEYS[1])
if v and string.sub(v, 1, 2) == "q:" then return 0 end
if not v and ARGV[3] == "pending" then return 0 end
return redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
