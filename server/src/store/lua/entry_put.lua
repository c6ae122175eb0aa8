-- File one payment-record entry unless its MD5 is there (entries_redis.rs).
-- KEYS: 1 the entry (`pr:e:{md5}`), 2 the merchant's list, 3 the merchant's
-- list of its status, 4 the merchant's list of its `bakongid`, 5 the due list
-- of its status, 6 the keep list (`pr:k`).
-- ARGV: 1 the entry's JSON, 2 keep until (ms since the epoch), 3 its list
-- member (`<created ms, 20 digits>:<md5>`), 4 its due member (`<expires ms,
-- 20 digits>:<md5>`), 5 its keep member (what `entry_prune.lua` needs).
-- Returns 1 if filed, 0 if the MD5 was there.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[2], 0, ARGV[3])
redis.call('ZADD', KEYS[3], 0, ARGV[3])
redis.call('ZADD', KEYS[4], 0, ARGV[3])
redis.call('ZADD', KEYS[5], 0, ARGV[4])
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[5])
return 1
