-- Parks jobs this worker read but will not start soon, because their account holds more than
-- its share of the worker's read-ahead (see the worker's `parking` module): each job moves from
-- the stream to the delayed set, due when the worker says, and its entry is acknowledged and
-- deleted in the same step, so a job is never lost or doubled. Its JSON is moved unchanged (a
-- retry keeps its attempt number); the retry mover brings it back to the stream when due.
-- An entry no longer pending for this consumer (taken over by another worker meanwhile) is
-- left alone: it belongs to the worker that holds it now. A job's JSON names its trigger and
-- its work (a page's cursor, a batch's targets, a retry's target and attempt), so a member
-- already in the delayed set with the same JSON is the same job: ZADD keeps one.
-- One call moves at most one read's worth of jobs (100), so it stays short.
-- KEYS: the jobs stream and the delayed zset of one queue shard (one hash slot).
-- ARGV: consumer group, this consumer's name, then (stream id, due time in ms, job JSON) triples.
-- Returns how many were parked.
local group, consumer = ARGV[1], ARGV[2]
local parked = 0
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  if #redis.call('XPENDING', KEYS[1], group, id, id, 1, consumer) == 1 then
    redis.call('XACK', KEYS[1], group, id)
    redis.call('XDEL', KEYS[1], id)
    redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i + 2])
    parked = parked + 1
  end
end
return parked
