-- Sets an event's delivery state and attempt count, if the event is kept.
-- KEYS: event hash. ARGV: delivery, attempts.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'a', ARGV[2])
return 1
