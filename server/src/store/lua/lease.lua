-- A lease: one owner at a time, for a while (`SET NX PX`, renewed by its holder).
-- KEYS[1]: the lease. ARGV: owner, lease ms (>= 1).
-- Returns 1 when ARGV[1] holds the lease now (taken or renewed), else 0.
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
