-- KEYS: the lease key. ARGV: owner. Deletes the lease only if the owner holds
-- it (a lease that ran out and was taken by another stays theirs).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 0
