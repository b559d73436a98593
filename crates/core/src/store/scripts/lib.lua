-- Shared by the cascade scripts below; prepended to each of them by store/scripts.rs.
-- Key names mirror crate::keys (see its module documentation): p is the prefix. These cascades
-- build key names and run on a single Redis only; on the cluster layout they are replaced by
-- the tombstone and intent steps of docs/architecture.md.

local function remove_subscription(p, sid)
  local skey = p .. 'subscription:{' .. sid .. '}'
  local owner_and_reg = redis.call('HMGET', skey, 'account_id', 'registration_id')
  if owner_and_reg[1] then
    redis.call('ZREM', p .. 'account:{' .. owner_and_reg[1] .. '}:subscriptions', sid)
  end
  if owner_and_reg[2] then
    redis.call('ZREM', p .. 'registration:{' .. owner_and_reg[2] .. '}:subscriptions', sid)
    redis.call('HDEL', p .. 'registration:{' .. owner_and_reg[2] .. '}:subscriber_accounts', sid)
  end
  redis.call('ZREM', p .. '{subscriptions}', sid)
  -- The subscriber's full attempt records (endpoints, answers) go with the subscription. A
  -- worker still recording an attempt may write one more, which expires with the retention.
  redis.call('DEL', skey .. ':deliveries')
  return redis.call('DEL', skey)
end

local function remove_registration(p, rid)
  local rkey = p .. 'registration:{' .. rid .. '}'
  local owner = redis.call('HGET', rkey, 'account_id')
  local subs = rkey .. ':subscriptions'
  for _, sid in ipairs(redis.call('ZRANGE', subs, 0, -1)) do
    remove_subscription(p, sid)
  end
  redis.call('DEL', subs, rkey .. ':subscriber_accounts')
  if owner then
    redis.call('ZREM', p .. 'account:{' .. owner .. '}:registrations', rid)
  end
  redis.call('ZREM', p .. '{registrations}', rid)
  return redis.call('DEL', rkey)
end

-- 1 deleted, 0 no such account, -1 refused: the last admin.
local function remove_account(p, aid)
  local akey = p .. 'account:{' .. aid .. '}'
  local username = redis.call('HGET', akey, 'username')
  if not username then
    return 0
  end
  local admins = p .. '{admins}'
  if redis.call('SISMEMBER', admins, aid) == 1 and redis.call('SCARD', admins) <= 1 then
    return -1
  end
  local own_subs = akey .. ':subscriptions'
  for _, sid in ipairs(redis.call('ZRANGE', own_subs, 0, -1)) do
    remove_subscription(p, sid)
  end
  local own_regs = akey .. ':registrations'
  for _, rid in ipairs(redis.call('ZRANGE', own_regs, 0, -1)) do
    remove_registration(p, rid)
  end
  redis.call('DEL', own_subs, own_regs)
  if redis.call('GET', p .. 'username:{' .. username .. '}') == aid then
    redis.call('DEL', p .. 'username:{' .. username .. '}')
  end
  redis.call('ZREM', p .. '{accounts}', aid)
  redis.call('SREM', admins, aid)
  return redis.call('DEL', akey)
end
