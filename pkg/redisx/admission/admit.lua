-- The vote's admission, in one round trip: the vote route's rate limits
-- (GCRA), then the voter's flag, the bot signals and the request's
-- accepted marker. Built by admission.layout; every offset below is named
-- there.
--
-- KEYS: the n rate-limit keys (rate:rl:{rule}:{subject}), the voter's
--       flag (voted:{poll}:{voter}), the request's accepted marker
--       (req:{poll}:{voter}:{request}), then the m bot counters
--       (bot:{poll}:{rule}:{subject}).
-- ARGV: mode ("flag", or "check": limits and bot signals only, for a vote
--       written without the queue; the flag and marker are not touched),
--       n, then burst, rate and period (seconds) of each limit;
--       the request id, the pending flag's TTL (ms), the marker's value
--       (the poll id) and its TTL (ms);
--       m, reject (1 or 0), then threshold, window (ms) and rule name of
--       each bot counter.
-- Reply: {allowed, rule, retry_after, reset_after, remaining, body}.
--   allowed 0: the limit at index rule refused (retry_after and
--   reset_after in seconds, as strings); nothing was written and body is 0.
--   allowed 1: every limit allowed and was counted; rule is the one with
--   the fewest requests left, and body is the admission's answer:
--     {0, holder}  the voter already holds a flag (mode flag only); the
--                  marker is set only when the holder is this request
--     {1, tripped[, earlier]} admitted: the bot rules the vote tripped;
--                  in mode flag, earlier is 1 when the request's marker
--                  was already there (an earlier attempt was admitted)
--     {2, tripped} a tripped bot rule refuses the vote
--
-- The limits are redis_rate's GCRA with its state: the same keys, the
-- theoretical arrival time stored as seconds since 2017-01-01 by Redis's
-- TIME, the same burst and emission interval, so Limiter.Allow and this
-- script count against one limit. redis_rate's own script cannot join
-- another, and each of its limits is a round trip. Unlike separate calls,
-- the limits are all-or-nothing: a request refused by one consumes none of
-- the others.

local mode = ARGV[1]
local n = tonumber(ARGV[2])
local fk, ak = KEYS[n + 1], KEYS[n + 2]
local f = 2 + 3 * n -- the flag's arguments follow
local rid, pending_ttl, marker, marker_ttl = ARGV[f + 1], ARGV[f + 2], ARGV[f + 3], ARGV[f + 4]
local bk, ba = n + 2, f + 4 -- the bot counters' keys and arguments follow

-- The limits, checked without writing.
local t = redis.call("TIME")
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local tats = {}
local minidx, minrem, reset = 0, -1, 0
for i = 1, n do
  local burst = tonumber(ARGV[3 * i])
  local rate = tonumber(ARGV[3 * i + 1])
  local period = tonumber(ARGV[3 * i + 2])
  local interval = period / rate
  local tat = redis.call("GET", KEYS[i])
  if tat then tat = math.max(tonumber(tat), now) else tat = now end
  local new_tat = tat + interval
  local diff = now - (new_tat - interval * burst)
  if diff < 0 then
    return {0, i, tostring(-diff), tostring(tat - now), 0, 0}
  end
  local rem = math.floor(diff / interval)
  tats[i] = new_tat
  if minrem < 0 or rem < minrem then minidx, minrem, reset = i, rem, new_tat - now end
end

-- Counts the vote in every bot rule's window (a window starts at its
-- first vote) and returns the rules it crossed and whether they refuse it.
local function bot_signals()
  local m = tonumber(ARGV[ba + 1])
  local tripped = {}
  for i = 1, m do
    local key = KEYS[bk + i]
    local c = redis.call("INCR", key)
    if c == 1 then redis.call("PEXPIRE", key, ARGV[ba + 3 * i + 1]) end
    if c > tonumber(ARGV[ba + 3 * i]) then tripped[#tripped + 1] = ARGV[ba + 3 * i + 2] end
  end
  return tripped, ARGV[ba + 2] == "1" and #tripped > 0
end

-- The admission proper. A voter whose flag is another request's, queued or
-- still pending, is answered at once with the holder (no marker, no bot
-- counting). A flag held by this request (a retry) lets it go on with its
-- marker. Otherwise the bot signals are counted and, unless they refuse
-- the vote, the pending flag and the marker are set.
local function admit()
  if mode == "check" then
    local tripped, reject = bot_signals()
    if reject then return {2, tripped} end
    return {1, tripped}
  end
  local v = redis.call("GET", fk)
  if v then
    -- Another request's flag, pending or queued, admits nothing: the
    -- caller answers 409 or waits for it to settle. This request's own
    -- (a retry) goes on with its marker.
    if v ~= rid and string.sub(v, 3) ~= rid then return {0, v} end
    -- A retry restarts its pending flag's clock: the flag is judged stale
    -- by the time since its request was last seen.
    if v == "p:" .. rid then redis.call("PEXPIRE", fk, pending_ttl) end
    redis.call("SET", ak, marker, "PX", marker_ttl)
    return {0, v}
  end
  local tripped, reject = bot_signals()
  if reject then return {2, tripped} end
  -- A marker without a flag: an earlier attempt of this request was
  -- admitted (its marker may be a forgotten "?") and its flag is gone
  -- (expired or lost), so its ballot may be queued or recorded. The third
  -- element says so: this attempt's answer carries no receipt salt.
  local earlier = redis.call("EXISTS", ak)
  redis.call("SET", fk, "p:" .. rid, "PX", pending_ttl)
  redis.call("SET", ak, marker, "PX", marker_ttl)
  return {1, tripped, earlier}
end

local result = admit()

-- The limits are counted once the admission ran, whatever it answered.
for i = 1, n do
  local ttl = tats[i] - now
  if ttl > 0 then redis.call("SET", KEYS[i], tats[i], "EX", math.ceil(ttl)) end
end
return {1, minidx, "-1", tostring(reset), minrem, result}
