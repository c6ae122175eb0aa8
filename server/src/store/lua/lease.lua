-- KEYS: the lease key. ARGV: owner, lease ms.
-- Returns 1 when the owner holds the lease now (taken, or extended), 0 when
-- another owner holds it.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
