-- Saves one merchant and its indexes, atomically.
-- KEYS: the merchant (khqr:m:{id}), the set of ids (khqr:ms).
-- ARGV: the merchant as JSON, '1' to create (refuse an existing id), its id,
-- the key prefix ('khqr:').
-- Key hashes (live keyHashes and testKeyHashes, the latter absent in older
-- merchants) index as {prefix}mk:{hash} -> id, bakongids as {prefix}mb:{bakongid} -> id.
-- Returns {0, ''} saved, {1, ''} the id exists, {2, '<bakongid> <owner>'}
-- a bakongid belongs to another merchant. Nothing is changed unless saved.
local old = redis.call('GET', KEYS[1])
if old and ARGV[2] == '1' then return {1, ''} end
local new = cjson.decode(ARGV[1])
for _, b in ipairs(new.bakongIds) do
  local owner = redis.call('GET', ARGV[4] .. 'mb:' .. b)
  if owner and owner ~= ARGV[3] then return {2, b .. ' ' .. owner} end
end
if old then
  local o = cjson.decode(old)
  for _, h in ipairs(o.keyHashes) do redis.call('DEL', ARGV[4] .. 'mk:' .. h) end
  for _, h in ipairs(o.testKeyHashes or {}) do redis.call('DEL', ARGV[4] .. 'mk:' .. h) end
  for _, b in ipairs(o.bakongIds) do redis.call('DEL', ARGV[4] .. 'mb:' .. b) end
end
for _, h in ipairs(new.keyHashes) do redis.call('SET', ARGV[4] .. 'mk:' .. h, ARGV[3]) end
for _, h in ipairs(new.testKeyHashes or {}) do redis.call('SET', ARGV[4] .. 'mk:' .. h, ARGV[3]) end
for _, b in ipairs(new.bakongIds) do redis.call('SET', ARGV[4] .. 'mb:' .. b, ARGV[3]) end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[3])
return {0, ''}
