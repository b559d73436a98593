-- The first step of a delete: marks the record `state` = `deleting`, in its own slot, so readers
-- treat it as missing at once and link_child.lua / link_subscriber.lua refuse new children.
-- A record still `creating` is tombstoned only when ARGV[1] is '1' (a cascade, or the recovery
-- of its create): a delete by id must not see a record that no reader sees.
-- KEYS: the record. ARGV: force ('1' | '0'), then names of fields to return.
-- Returns {status, values of the fields...}: status 0 no such record, 1 was live and is now
-- tombstoned, 2 was creating (tombstoned only if forced), 3 was being deleted already.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'0'}
end
local state = redis.call('HGET', KEYS[1], 'state')
local status = 1
if state == 'deleting' then
  status = 3
elseif state == 'creating' then
  status = 2
end
if status == 1 or (status == 2 and ARGV[1] == '1') then
  redis.call('HSET', KEYS[1], 'state', 'deleting')
end
local reply = {tostring(status)}
for i = 2, #ARGV do
  reply[i] = redis.call('HGET', KEYS[1], ARGV[i]) or ''
end
return reply
