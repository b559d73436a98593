-- Hands jobs this worker read but never started back to the queue at shutdown, so another
-- worker takes them at once instead of after the visibility timeout. Each job is queued again
-- at the tail of the stream and its old entry acknowledged and deleted, atomically, so a job is
-- never lost or doubled. An entry no longer pending (reclaimed meanwhile) is left alone.
-- KEYS: the jobs stream.
-- ARGV: consumer group, the stream field of a job, then (stream id, job JSON) pairs.
-- Returns how many were handed back.
local group, field = ARGV[1], ARGV[2]
local handed = 0
for i = 3, #ARGV, 2 do
  if redis.call('XACK', KEYS[1], group, ARGV[i]) == 1 then
    redis.call('XADD', KEYS[1], '*', field, ARGV[i + 1])
    redis.call('XDEL', KEYS[1], ARGV[i])
    handed = handed + 1
  end
end
return handed
