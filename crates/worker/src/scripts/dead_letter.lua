-- Sets aside a job that keeps crashing workers: copies it to the dead-letter list (newest first,
-- capped) and removes it from the stream. The deliveries it still owed count as failed on its
-- trigger's summary, so `pending` does not stay up for ever. Does nothing if the entry is no
-- longer pending: a worker finished it after all.
-- A manual redelivery set aside is a failed redelivery: its entry in the trigger's redeliveries
-- says so, and the delivery can be redelivered again.
-- KEYS: the jobs stream, the dead-letter list, then the trigger's record if the job names one,
--       then the trigger's redeliveries hash if the job is a redelivery.
-- ARGV: consumer group, stream id, list cap, the dead letter's JSON (written by the worker from
--       the core DeadLetter type), the number of deliveries it owed, then the redelivered
--       subscription if the job is a redelivery.
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('XDEL', KEYS[1], ARGV[2])
local owed = tonumber(ARGV[5])
if KEYS[3] and owed > 0 and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'pending', -owed)
  redis.call('HINCRBY', KEYS[3], 'failed', owed)
end
if KEYS[4] and redis.call('HGET', KEYS[4], ARGV[6]) == 'pending' then
  redis.call('HSET', KEYS[4], ARGV[6], 'failed')
end
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
return 1
