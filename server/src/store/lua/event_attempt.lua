-- Logs one attempt of an event, if the event is kept: appended to its list,
-- which expires with the event and keeps at most ARGV[2] attempts (past
-- that, the one just after the first half goes).
-- KEYS: event hash, attempts list. ARGV: attempt JSON, most kept.
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
local max = tonumber(ARGV[2])
if redis.call('LLEN', KEYS[2]) > max then
  local half = math.floor(max / 2)
  redis.call('LSET', KEYS[2], half, '\0gone')
  redis.call('LREM', KEYS[2], 1, '\0gone')
end
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
