-- One round trip for authentication: username -> id -> record.
-- KEYS: username key. ARGV: account record prefix.
local id = redis.call('GET', KEYS[1])
if not id then
  return false
end
return redis.call('HGETALL', ARGV[1] .. id)
