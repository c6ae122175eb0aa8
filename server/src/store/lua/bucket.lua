-- Token bucket: `admit(k1, r1, b1, k2, r2, b2, now)` returns 0 and takes a
-- token from both buckets, or the ms to wait. Buckets are hashes `{t, ts}` that
-- expire once full again. Prepended to create.lua and fetch.lua.
local function wait(key, rate, burst, now)
  if rate <= 0 or key == '' then return 0, nil end
  local v = redis.call('HMGET', key, 't', 'ts')
  local tokens = tonumber(v[1])
  local ts = tonumber(v[2])
  if tokens == nil or ts == nil then tokens = burst; ts = now end
  local elapsed = now - ts
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(burst, tokens + elapsed * rate / 1000)
  if tokens < 1 then return math.ceil((1 - tokens) * 1000 / rate), tokens end
  return 0, tokens
end
local function take(key, rate, burst, now, tokens)
  if rate <= 0 or key == '' then return end
  redis.call('HSET', key, 't', tostring(tokens - 1), 'ts', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
end
local function admit(k1, r1, b1, k2, r2, b2, now)
  local w1, t1 = wait(k1, r1, b1, now)
  if w1 > 0 then return w1 end
  local w2, t2 = wait(k2, r2, b2, now)
  if w2 > 0 then return w2 end
  take(k1, r1, b1, now, t1)
  take(k2, r2, b2, now, t2)
  return 0
end
