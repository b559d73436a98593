-- The shard-slot step of one fan-out page: queue the page's deliver_batch.v1 job and the next
-- page's fan_out.v1 job, count the batch as pending on the trigger, and acknowledge this job,
-- atomically. The page was read just before from the registration's slot (a read only), so a
-- crash before this script repeats the read, and after it every batch exists exactly once. If
-- the entry is no longer pending, another worker finished this page already: nothing is written.
--
-- Deliveries to ordered subscriptions are jobs of their own (deliver_ordered.v1), queued with
-- the batch and counted pending with it.
--
-- KEYS: the jobs stream of the trigger's shard, the triggered record.
-- ARGV: consumer group, this job's stream id ('' for none), the batch job JSON ('' for none),
--       the number of deliveries queued (the batch's targets and the ordered jobs), the next
--       page's job JSON ('' for none), the number of the page's rows whose filter did not
--       match (counted as filtered on the summary), then the ordered jobs' JSON.
-- Returns 1 done, 0 done before by another worker.
local group, entry = ARGV[1], ARGV[2]
if entry ~= '' then
  if redis.call('XACK', KEYS[1], group, entry) == 0 then
    return 0
  end
  redis.call('XDEL', KEYS[1], entry)
end
local targets = tonumber(ARGV[4])
if ARGV[3] ~= '' then
  redis.call('XADD', KEYS[1], '*', 'job', ARGV[3])
end
for i = 7, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'job', ARGV[i])
end
local filtered = tonumber(ARGV[6]) or 0
if (targets > 0 or filtered > 0) and redis.call('EXISTS', KEYS[2]) == 1 then
  if targets > 0 then
    redis.call('HINCRBY', KEYS[2], 'pending', targets)
  end
  if filtered > 0 then
    redis.call('HINCRBY', KEYS[2], 'filtered', filtered)
  end
end
if ARGV[5] ~= '' then
  redis.call('XADD', KEYS[1], '*', 'job', ARGV[5])
end
return 1
