-- KEYS: client bucket, account bucket ('' for none), entry.
-- ARGV: now, client rate, burst, account rate, burst.
-- Returns `{0, value|false}` or `{1, ms}`.
local w = admit(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[1]))
if w > 0 then return {1, w} end
return {0, redis.call('GET', KEYS[3])}
