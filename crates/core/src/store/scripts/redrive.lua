-- Puts a dead letter's job back on its shard's queue, once, and marks the letter redriven. The
-- letter must still be where the caller found it, as it was then: otherwise (redriven meanwhile,
-- or moved by newer letters or by the cap) nothing is written and the caller looks again.
-- KEYS: the shard's dead-letter list, its jobs stream, then the trigger's record if the job owes
--       it deliveries, then the trigger's redeliveries hash if the job is a manual redelivery.
-- ARGV: the letter's index, the letter's JSON as found, the job JSON, now (Unix seconds), the
--       deliveries the job owes its trigger, then the redelivered subscription if it is one.
-- Returns the job's new stream id, false when the letter was not as found, or 'pending' when
-- the letter is a redelivery whose delivery is being redelivered again (nothing is written).
local letter = redis.call('LINDEX', KEYS[1], ARGV[1])
if letter ~= ARGV[2] or string.sub(letter, -1) ~= '}' then
  return false
end
-- Setting the letter aside counted what it owed as failed; those deliveries are pending again.
-- A manual redelivery's delivery may have been redelivered again since: its count is the one
-- its redeliveries entry names now, and while that is pending the letter waits.
local owed = tonumber(ARGV[5])
local count = 'failed'
local live = KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1
if KEYS[4] and live then
  count = redis.call('HGET', KEYS[4], ARGV[6]) or 'failed'
  if count == 'pending' then
    return 'pending'
  end
  redis.call('HSET', KEYS[4], ARGV[6], 'pending')
end
if live and owed > 0 then
  redis.call('HINCRBY', KEYS[3], count, -owed)
  redis.call('HINCRBY', KEYS[3], 'pending', owed)
end
local id = redis.call('XADD', KEYS[2], '*', 'job', ARGV[3])
-- The letter is a JSON object written by pubhook: the two fields go before its closing brace.
local marked = string.sub(letter, 1, -2) ..
  ',"redriven_at":' .. ARGV[4] .. ',"redriven_as":"' .. id .. '"}'
redis.call('LSET', KEYS[1], ARGV[1], marked)
return id
