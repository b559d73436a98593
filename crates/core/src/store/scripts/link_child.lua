-- Links a child record into an index of its parent, in the parent's slot, only while the parent
-- is live (exists, no `state` field) and under the quota: a delete tombstones the parent before
-- it reads this index, so a child is either linked before (and the delete sees it) or refused.
-- Counted where it is written, so concurrent creates cannot overshoot the quota. A child
-- already linked (a repeated step) is linked.
-- KEYS: the parent record, the parent's index. ARGV: child id, score, quota (0 for none).
-- Returns 1 linked, 0 the parent is not live, -1 the quota is full.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'state') == 1 then
  return 0
end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 1
end
local quota = tonumber(ARGV[3])
if quota > 0 and redis.call('ZCARD', KEYS[2]) >= quota then
  return -1
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
