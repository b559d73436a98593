-- Removes a subscription from its registration's subscriber index, subscriber_accounts map and
-- subscriber_filters and subscriber_order maps together (see link_subscriber.lua).
-- KEYS: the registration's subscriptions index, its subscriber_accounts hash, its
--       subscriber_filters hash, its subscriber_order hash. ARGV: subscription id.
-- Returns 1 removed, 0 it was not linked.
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return removed
