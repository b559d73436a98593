-- Updates fields of an existing, live record, reporting as RethinkDB did. A record being created
-- or deleted (a `state` field) is missing to every reader, so it is skipped.
-- KEYS: the record. ARGV: field/value pairs.
-- Returns 'skipped' (no such record), 'unchanged' or 'replaced'.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'state') == 1 then
  return 'skipped'
end
local changed = false
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then
    changed = true
  end
end
if not changed then
  return 'unchanged'
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 'replaced'
