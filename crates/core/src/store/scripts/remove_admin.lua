-- Takes an admin (an account whose record has is_admin) out of the admins set before its
-- account is tombstoned, unless it is the last one: the check and the removal are one step on
-- the set's slot, so concurrent deletes of the last two admins remove exactly one. An admin
-- not in the set (its create died between its commit and its admin entry, which its intent
-- will write) is refused when the set is empty, as the last one.
-- KEYS: the admins set. ARGV: account id.
-- Returns 1 removed, 0 not in the set (another admin is), -1 refused: the last admin.
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  if redis.call('SCARD', KEYS[1]) == 0 then
    return -1
  end
  return 0
end
if redis.call('SCARD', KEYS[1]) <= 1 then
  return -1
end
redis.call('SREM', KEYS[1], ARGV[1])
return 1
