-- The trigger as one atomic step: the caller's ownership is checked, then the triggered record
-- and its fan-out job are written together, or nothing is written.
-- KEYS: registration, triggered record, triggered index, jobs stream.
-- ARGV: id, score, job JSON, the owner's account id ('' to skip the check), then field/value
--       pairs of the record.
-- Returns 1 written, 0 no such registration, -1 the registration is not the caller's.
local owner = redis.call('HGET', KEYS[1], 'account_id')
-- A registration being created or deleted (a `state` field) is missing, as to every reader.
if not owner or redis.call('HEXISTS', KEYS[1], 'state') == 1 then
  return 0
end
if ARGV[4] ~= '' and owner ~= ARGV[4] then
  return -1
end
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('XADD', KEYS[4], '*', 'job', ARGV[3])
return 1
