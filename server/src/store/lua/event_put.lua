-- Files an event once (SET NX semantics), with its indexes.
-- KEYS: event hash, the merchant's index (lex zset), the merchant's index of
--       the event's kind (lex zset), the keep index (zset).
-- ARGV: event JSON, delivery, attempts, keep until (ms since the epoch),
--       index member (`<20-digit created_ms>:<id>`), keep member
--       (`<merchant>\n<kind>\n<index member>`).
-- Returns 1 if filed, 0 if an event with this id was there.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[1], 'd', ARGV[2], 'a', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], 0, ARGV[5])
redis.call('ZADD', KEYS[3], 0, ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[6])
return 1
