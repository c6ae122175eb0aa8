-- Compare-and-set of one entry (entries_redis.rs): replaces the entry's JSON
-- only if it is still exactly what the caller read, and moves it from its old
-- status's lists to its new one's.
-- KEYS: 1 the entry, 2 the merchant's list of the old status, 3 of the new
-- status, 4 the due list of the old status, 5 of the new status.
-- ARGV: 1 the JSON read, 2 the new JSON, 3 the list member, 4 the due member.
-- Returns 1 if replaced, 0 if the entry is gone or changed since it was read.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
if KEYS[2] ~= KEYS[3] then
  redis.call('ZREM', KEYS[2], ARGV[3])
  redis.call('ZADD', KEYS[3], 0, ARGV[3])
  redis.call('ZREM', KEYS[4], ARGV[4])
  redis.call('ZADD', KEYS[5], 0, ARGV[4])
end
return 1
