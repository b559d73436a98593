-- Takes an admin out of the admins set before its account is tombstoned, unless it is the last
-- one: the check and the removal are one step on the set's slot, so concurrent deletes of the
-- last two admins remove exactly one.
-- KEYS: the admins set. ARGV: account id.
-- Returns 1 removed, 0 not an admin (or removed already), -1 refused: the last admin.
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  return 0
end
if redis.call('SCARD', KEYS[1]) <= 1 then
  return -1
end
redis.call('SREM', KEYS[1], ARGV[1])
return 1
