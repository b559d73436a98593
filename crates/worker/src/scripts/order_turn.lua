-- Whether one delivery to an ordered subscription may be sent now: it joins the subscription's
-- order (its trigger's creation time, ties by triggered id) and takes the turn when it holds
-- it already, or when nobody holds it and it is the first in the order. Only the holder sends,
-- so at most one delivery per subscription is in flight. A hold lasts a lease: a delivery that
-- holds it renews it whenever it runs and before each retry (order_release.lua), so a hold
-- that lapsed belongs to a job that was lost (its worker died after acknowledging it, or it
-- was set aside as a dead letter).
--
-- A waiting delivery's job JSON is kept under `job:<id>`: whoever hands it the turn wakes it
-- (moves it to now in its shard's delayed set). A head handed the turn (`woken`) that did not
-- come for it within a lease has lost its job: it is dropped from the order, so one lost job
-- stalls its subscription for two leases at most, not for ever.
--
-- KEYS: the subscription's order zset, its order_state hash (one slot: the subscription's).
-- ARGV: triggered id, its order score, now in ms, the lease in ms, this job's JSON.
-- Returns {'1'}: send now; {'0', until}: wait, the turn is held until then (ms) at least;
-- {'0', until, id, job JSON}: wait, and wake that delivery, which was handed the turn.
local id, now, lease = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], id)
redis.call('HSET', KEYS[2], 'job:' .. id, ARGV[5])
local holder = redis.call('HGET', KEYS[2], 'holder')
local held_until = tonumber(redis.call('HGET', KEYS[2], 'until') or '0')
local function take(who)
  redis.call('HSET', KEYS[2], 'holder', who, 'until', now + lease)
end
local function go()
  take(id)
  if redis.call('HGET', KEYS[2], 'woken') == id then
    redis.call('HDEL', KEYS[2], 'woken')
  end
  return {'1'}
end
if holder == id then
  return go()
end
if holder and held_until > now then
  return {'0', tostring(held_until)}
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
if head ~= id and redis.call('HGET', KEYS[2], 'woken') == head then
  redis.call('ZREM', KEYS[1], head)
  redis.call('HDEL', KEYS[2], 'job:' .. head, 'woken')
  head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
end
if head == id then
  return go()
end
take(head)
redis.call('HSET', KEYS[2], 'woken', head)
return {'0', tostring(now + lease), head, redis.call('HGET', KEYS[2], 'job:' .. head) or ''}
