-- Releases the voter's flag only if it still holds this request, in any
-- state (pending "p:", queued "q:", or the bare request id), and, when a
-- second key is given, forgets the request's accepted marker: the request
-- was answered with an error and never accepted (Flags.Withdraw).
-- KEYS[1]: the voter's flag (voted:{poll}:{voter}).
-- KEYS[2]: optional, the request's marker (req:{poll}:{voter}:{request}).
-- ARGV[1]: the request id.
-- Returns 1 when the flag was deleted, 0 otherwise.
if KEYS[2] then redis.call("DEL", KEYS[2]) end
local v = redis.call("GET", KEYS[1])
if v == ARGV[1] or v == "p:" .. ARGV[1] or v == "q:" .. ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0
