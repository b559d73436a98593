-- The first write of a record that spans hash slots: its hash, marked `state` = `creating`, so
-- every reader treats it as missing until commit_record.lua makes it live. Never overwrites: a
-- record that exists (or a retry of this step) is left as it is.
-- KEYS: the record. ARGV: field/value pairs (the state field is added here).
-- Returns 1 written, 0 the key existed.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'creating', unpack(ARGV))
return 1
