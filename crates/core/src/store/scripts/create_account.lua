-- Creates an account only if its username is free: the username key is the lock, taken with NX
-- in the same script as the record, so concurrent creates of one name give exactly one account.
-- KEYS: username, account, accounts index, admins set.
-- ARGV: id, score, is_admin ('1' or '0'), then field/value pairs of the record.
-- Returns 1 created, 0 username taken.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  return 0
end
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
if ARGV[3] == '1' then
  redis.call('SADD', KEYS[4], ARGV[1])
end
return 1
