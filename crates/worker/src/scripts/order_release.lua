-- The end of one turn of an ordered subscription (see order_turn.lua), run after the job's
-- outcome is recorded and acknowledged in its trigger's shard.
--
-- 'hold': the delivery failed and retries; it keeps the turn until its retry is due and a
-- lease more, and its retry's JSON is kept for waking it.
-- 'done': the delivery ended for good (delivered, failed, skipped). It leaves the order, and
-- the turn goes to the next delivery in order, if any, which the caller wakes. A repeat of a
-- 'done' (the job ran again after a crash) finds it gone and only wakes the holder again,
-- which is harmless: a wake moves a waiting job, it never adds one.
--
-- KEYS: the subscription's order zset, its order_state hash (one slot: the subscription's).
-- ARGV: triggered id, now in ms, the lease in ms, 'hold' or 'done', the retry's JSON ('hold').
-- Returns {}: nobody to wake; {id, job JSON}: wake that delivery.
local id, now, lease, mode = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local holder = redis.call('HGET', KEYS[2], 'holder')
if mode == 'hold' then
  if holder == id then
    redis.call('HSET', KEYS[2], 'until', now + lease, 'job:' .. id, ARGV[5])
  end
  return {}
end
local removed = redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], 'job:' .. id)
local held_until = tonumber(redis.call('HGET', KEYS[2], 'until') or '0')
if holder and holder ~= id and held_until > now then
  if removed == 0 then
    return {holder, redis.call('HGET', KEYS[2], 'job:' .. holder) or ''}
  end
  return {}
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
if not head then
  redis.call('HDEL', KEYS[2], 'holder', 'until', 'woken')
  return {}
end
redis.call('HSET', KEYS[2], 'holder', head, 'until', now + lease, 'woken', head)
return {head, redis.call('HGET', KEYS[2], 'job:' .. head) or ''}
