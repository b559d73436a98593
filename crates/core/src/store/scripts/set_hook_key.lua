-- Sets the hash of a registration's hook key, for its owner only; a record being created or
-- deleted (a `state` field) is missing.
-- KEYS[1] the registration. ARGV[1] the caller's account id, ARGV[2] the key's hash.
-- Returns 1 (set), 0 (no such registration) or -1 (not the caller's).
local owner = redis.call('HGET', KEYS[1], 'account_id')
if not owner or redis.call('HEXISTS', KEYS[1], 'state') == 1 then
  return 0
end
if owner ~= ARGV[1] then
  return -1
end
redis.call('HSET', KEYS[1], 'hook_key', ARGV[2])
return 1
