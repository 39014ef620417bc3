-- Marks the voter's flag queued for this request, and says what it found.
-- KEYS[1]: the voter's flag (voted:{poll}:{voter}).
-- ARGV[1]: the request id; ARGV[2]: the queued flag's TTL (ms);
-- ARGV[3]: "pending" (after a produce: only this request's own pending
--          flag becomes queued) or "any" (after a direct write: any flag
--          but another request's queued one, or none, becomes this one's).
-- Reply: 1 the flag is this request's queued one; 0 there is no flag (the
-- worker already refused the vote and released it, or Redis lost it: a
-- queued flag now would lock the voter out); 2 another request's pending
-- flag is there (it took a stale flag over and is writing through); 3
-- another request's queued flag is there.
local rid = ARGV[1]
local q = "q:" .. rid
local v = redis.call("GET", KEYS[1])
if v == q then return 1 end
if v and string.sub(v, 1, 2) == "q:" then return 3 end
if ARGV[3] == "pending" then
  if not v then return 0 end
  if v ~= "p:" .. rid and v ~= rid then return 2 end
end
redis.call("SET", KEYS[1], q, "PX", ARGV[2])
return 1
