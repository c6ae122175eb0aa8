-- The merchant holding an API key, in one round trip.
-- KEYS: the key's index entry ({prefix}mk:{hash}). ARGV: the merchant key
-- prefix ('khqr:m:'). Returns the merchant's JSON, or nil.
local id = redis.call('GET', KEYS[1])
if not id then return false end
return redis.call('GET', ARGV[1] .. id)
