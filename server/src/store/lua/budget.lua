-- The Bakong call budget: one token bucket shared by every instance.
-- KEYS[1]: the bucket, a hash {m = milli-tokens, a = ms of the last refill}.
-- ARGV: tokens per second (>= 1), burst (tokens, >= 1), floor (tokens that
-- must remain after this one is taken, < burst), now (ms since the Unix epoch,
-- the caller's clock).
-- Returns 0 when a token was taken, else the ms until one may be.
-- The same arithmetic as `take` in store/coord.rs: keep them in step.
local rate = tonumber(ARGV[1])
local cap = tonumber(ARGV[2]) * 1000
local need = (tonumber(ARGV[3]) + 1) * 1000
local now = tonumber(ARGV[4])
local full_ms = math.floor(cap / rate) + 1
local v = redis.call('HMGET', KEYS[1], 'm', 'a')
local m = tonumber(v[1])
local a = tonumber(v[2])
if m == nil or a == nil then
  m = cap
  a = now
end
if now > a then
  m = math.min(cap, m + math.min(now - a, full_ms) * rate)
  a = now
end
local wait = 0
if m >= need then
  m = m - 1000
else
  wait = math.floor((need - m + rate - 1) / rate)
end
redis.call('HSET', KEYS[1], 'm', m, 'a', a)
redis.call('PEXPIRE', KEYS[1], full_ms + 1000)
return wait
