-- The shard-slot step of a trigger: the triggered record and its fan-out job, written together
-- or not at all, so an acknowledged trigger is never lost and never delivered without its
-- record. The registration was checked, and the record added to the global triggered index,
-- just before (other slots; see docs/architecture.md for what a crash between the steps leaves).
-- KEYS: the triggered record, the jobs stream of its shard.
-- ARGV: job JSON, retention in seconds (0: kept for ever), then field/value pairs of the record.
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
local retention = tonumber(ARGV[2])
if retention > 0 then
  redis.call('EXPIRE', KEYS[1], retention)
end
redis.call('XADD', KEYS[2], '*', 'job', ARGV[1])
return 1
