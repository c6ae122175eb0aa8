-- Forget entries past their keep time, and their list members (entries_redis.rs).
-- KEYS: 1 the keep list (`pr:k`: score keep-until ms, member
-- `<md5>\n<created, 20 digits>\n<expires, 20 digits>\n<merchant>\n<bakongid>`).
-- ARGV: 1 now (ms), 2 most entries to forget, 3 the prefix (`khqr:pr:`),
-- 4.. every status name.
-- Returns how many were forgotten.
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local p = ARGV[3]
for _, it in ipairs(items) do
  local md5, created, expires, merchant, account =
    string.match(it, '^([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n(.*)$')
  if md5 then
    local member = created .. ':' .. md5
    redis.call('DEL', p .. 'e:' .. md5)
    redis.call('ZREM', p .. 'm:' .. merchant, member)
    redis.call('ZREM', p .. 'b:' .. merchant .. '\n' .. account, member)
    for i = 4, #ARGV do
      redis.call('ZREM', p .. 's:' .. merchant .. '\n' .. ARGV[i], member)
      redis.call('ZREM', p .. 'd:' .. ARGV[i], expires .. ':' .. md5)
    end
  end
  redis.call('ZREM', KEYS[1], it)
end
return #items
