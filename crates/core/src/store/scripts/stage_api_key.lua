-- Stores the key of a reset that somebody other than the owner asked for beside the current
-- one, so the owner is not locked out: the current key works until the pending one is first
-- used (see promote_api_key.lua) or until the deadline passes. A later reset replaces the
-- pending key, but never revives a key whose grace is over nor extends a grace: if the earlier
-- pending key's deadline has passed, that key becomes the account's key first (the old one is
-- dead already); if it has not, the earlier deadline stays.
-- KEYS: the account. ARGV: the new hash, the deadline in microseconds, now in microseconds.
-- Returns 1 staged, 0 no such account.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local deadline = ARGV[2]
local pending = redis.call('HGET', KEYS[1], 'api_key_pending')
if pending then
  local earlier = redis.call('HGET', KEYS[1], 'api_key_pending_until') or '0'
  if tonumber(earlier) <= tonumber(ARGV[3]) then
    redis.call('HSET', KEYS[1], 'api_key', pending)
  elseif tonumber(earlier) < tonumber(deadline) then
    deadline = earlier
  end
end
redis.call('HSET', KEYS[1], 'api_key_pending', ARGV[1], 'api_key_pending_until', deadline)
return 1
