-- KEYS: delivery hash, lease key. ARGV: owner, lease ms.
-- Returns `{0, n}` done, `{1, attempts}` leased to owner, `{2, 0}` busy.
local v = redis.call('HMGET', KEYS[1], 'done', 'attempts')
if v[1] == '1' then return {0, 0} end
local n = tonumber(v[2]) or 0
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return {2, 0} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {1, n}
