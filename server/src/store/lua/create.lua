-- KEYS: payer bucket (a client's or a merchant's), account bucket ('' for a
-- merchant), payer queue, entry, idempotency key ('' for none), the key's
-- scope queue ('' for none).
-- ARGV: now, payer rate, burst, account rate, burst, the payer's quota (QRs,
-- and idempotency keys per scope), md5, value, expire-at ms, queue ttl ms,
-- tran, entry key prefix, idempotency value, its ttl ms.
-- Returns `{0, ''}` stored, `{1, ms}` limited, `{2, ''}` collision (the tran
-- is taken, even by the same payload: two creates never share a tran),
-- `{3, value}` replayed (the key's stored value), `{4, value}` key reused.
local now = tonumber(ARGV[1])
-- A taken tran costs no token: the caller tries the next millisecond.
if redis.call('EXISTS', KEYS[4]) == 1 and (KEYS[5] == '' or redis.call('EXISTS', KEYS[5]) == 0) then
  return {2, ''}
end
local w = admit(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]), now)
if w > 0 then return {1, tostring(w)} end
if KEYS[5] ~= '' then
  local prior = redis.call('GET', KEYS[5])
  if prior then
    if string.sub(prior, 1, 64) == string.sub(ARGV[13], 1, 64) then return {3, prior} end
    return {4, prior}
  end
end
if redis.call('EXISTS', KEYS[4]) == 1 then return {2, ''} end
redis.call('SET', KEYS[4], ARGV[8], 'PXAT', ARGV[9])
redis.call('LPUSH', KEYS[3], ARGV[11])
redis.call('PEXPIRE', KEYS[3], ARGV[10])
if redis.call('LLEN', KEYS[3]) > tonumber(ARGV[6]) then
  local gone = redis.call('RPOP', KEYS[3])
  if gone and gone ~= ARGV[11] then redis.call('DEL', ARGV[12] .. gone) end
end
if KEYS[5] ~= '' then
  redis.call('SET', KEYS[5], ARGV[13], 'PX', ARGV[14])
  redis.call('LPUSH', KEYS[6], KEYS[5])
  redis.call('PEXPIRE', KEYS[6], ARGV[14])
  if redis.call('LLEN', KEYS[6]) > tonumber(ARGV[6]) then
    local gone = redis.call('RPOP', KEYS[6])
    if gone and gone ~= KEYS[5] then redis.call('DEL', gone) end
  end
end
return {0, ''}
