-- The last step of a create: the record becomes live. Only a record still `creating` is
-- committed; one that a delete or the intent's recovery tombstoned (or removed) meanwhile stays
-- as it is, and the create is undone.
-- KEYS: the record. Returns 1 live now (or already), 0 not committed.
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'creating' then
  redis.call('HDEL', KEYS[1], 'state')
  return 1
end
if not state and redis.call('EXISTS', KEYS[1]) == 1 then
  return 1
end
return 0
