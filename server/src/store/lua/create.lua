-- KEYS: payer bucket (a client's or a merchant's), account bucket ('' for a
-- merchant), payer queue, entry.
-- ARGV: now, payer rate, burst, account rate, burst, quota, md5, value,
-- expire-at ms, queue ttl ms, tran, entry key prefix.
-- Returns `{0}` stored, `{1, ms}` limited, `{2}` collision.
local now = tonumber(ARGV[1])
local w = admit(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]), now)
if w > 0 then return {1, w} end
local old = redis.call('GET', KEYS[4])
if old then
  if string.sub(old, 1, 32) == ARGV[7] then return {0} end
  return {2}
end
redis.call('SET', KEYS[4], ARGV[8], 'PXAT', ARGV[9])
redis.call('LPUSH', KEYS[3], ARGV[11])
redis.call('PEXPIRE', KEYS[3], ARGV[10])
if redis.call('LLEN', KEYS[3]) > tonumber(ARGV[6]) then
  local gone = redis.call('RPOP', KEYS[3])
  if gone and gone ~= ARGV[11] then redis.call('DEL', ARGV[12] .. gone) end
end
return {0}
