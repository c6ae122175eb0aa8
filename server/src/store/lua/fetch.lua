-- KEYS: payer bucket (a client's or a merchant's), account bucket ('' for
-- none), entry.
-- ARGV: now, payer rate, burst, account rate, burst, account.
-- The account bucket is charged only when the entry exists and its record's
-- `bakong_id` is the account: a check that proves nothing costs it nothing.
-- Returns `{0, value|false}` or `{1, ms}`.
local now = tonumber(ARGV[1])
local r1, b1 = tonumber(ARGV[2]), tonumber(ARGV[3])
local w1, t1 = wait(KEYS[1], r1, b1, now)
if w1 > 0 then return {1, w1} end
local v = redis.call('GET', KEYS[3])
if v and KEYS[2] ~= '' then
  local ok, rec = pcall(cjson.decode, string.sub(v, 33))
  if ok and type(rec) == 'table' and rec.bakong_id == ARGV[6] then
    local r2, b2 = tonumber(ARGV[4]), tonumber(ARGV[5])
    local w2, t2 = wait(KEYS[2], r2, b2, now)
    if w2 > 0 then return {1, w2} end
    take(KEYS[2], r2, b2, now, t2)
  end
end
take(KEYS[1], r1, b1, now, t1)
return {0, v}
