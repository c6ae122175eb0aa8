-- One bounded step of a list of entries (entries_redis.rs).
-- KEYS: 1 the list (a sorted set, every score 0, members
-- `<ms, 20 digits>:<md5>`, so in (ms, md5) order).
-- ARGV: 1 the lowest member (`[…` inclusive or `(…` exclusive), 2 the
-- highest (`(…` or `+`), 3 most entries wanted, 4 a status the entries must
-- have ('' for any), 5 the entry keys' prefix, 6 most members read.
-- Returns {last member read or '' at the list's end, entry JSON...}: members
-- whose entry expired are skipped (entry_prune.lua removes them).
local want, status, left = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[6])
local min, out, last = ARGV[1], {''}, ''
while #out - 1 < want and left > 0 do
  local n = math.min(want - (#out - 1), left)
  local members = redis.call('ZRANGEBYLEX', KEYS[1], min, ARGV[2], 'LIMIT', 0, n)
  if #members == 0 then
    last = ''
    break
  end
  left = left - #members
  for _, m in ipairs(members) do
    local v = redis.call('GET', ARGV[5] .. string.sub(m, 22))
    if v then
      local keep = status == ''
      if not keep then
        local ok, e = pcall(cjson.decode, v)
        keep = ok and type(e) == 'table' and e.status == status
      end
      if keep then
        out[#out + 1] = v
      end
    end
  end
  last = members[#members]
  min = '(' .. last
  if #members < n then
    last = ''
    break
  end
end
out[1] = last
return out
