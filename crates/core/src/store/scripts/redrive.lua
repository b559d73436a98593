-- Puts a dead letter's job back on its shard's queue, once, and marks the letter redriven. The
-- letter must still be where the caller found it, as it was then: otherwise (redriven meanwhile,
-- or moved by newer letters or by the cap) nothing is written and the caller looks again.
-- KEYS: the shard's dead-letter list, its jobs stream, then the trigger's record if the job owes
--       it deliveries, then the trigger's redeliveries hash if the job is a manual redelivery.
-- ARGV: the letter's index, the letter's JSON as found, the job JSON, now (Unix seconds), the
--       deliveries the job owes its trigger, then the redelivered subscription if it is one.
-- Returns the job's new stream id, or false when the letter was not as found.
local letter = redis.call('LINDEX', KEYS[1], ARGV[1])
if letter ~= ARGV[2] or string.sub(letter, -1) ~= '}' then
  return false
end
local id = redis.call('XADD', KEYS[2], '*', 'job', ARGV[3])
-- The letter is a JSON object written by pubhook: the two fields go before its closing brace.
local marked = string.sub(letter, 1, -2) ..
  ',"redriven_at":' .. ARGV[4] .. ',"redriven_as":"' .. id .. '"}'
redis.call('LSET', KEYS[1], ARGV[1], marked)
-- Setting the letter aside counted what it owed as failed; those deliveries are pending again.
local owed = tonumber(ARGV[5])
if KEYS[3] and owed > 0 and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'failed', -owed)
  redis.call('HINCRBY', KEYS[3], 'pending', owed)
  -- A redelivery is pending again, so a second request does not queue it twice.
  if KEYS[4] then
    redis.call('HSET', KEYS[4], ARGV[6], 'pending')
  end
end
return id
