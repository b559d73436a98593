-- A page of records: ids by rank from a sorted set, then each record, until the values read
-- pass a byte budget (the caller writes the page under the same budget, and a record's JSON is
-- at least about as long as its values, so nothing the caller could still use is left out).
-- KEYS: the index. ARGV: record key prefix, first rank, last rank, byte budget (0: none).
-- Returns {ids in range, records read, record, record, ...}; a record that vanished is an
-- empty array. At least one record is read.
local ids = redis.call('ZRANGE', KEYS[1], ARGV[2], ARGV[3])
local budget = tonumber(ARGV[4]) or 0
local out = {#ids, 0}
local used = 0
for i, id in ipairs(ids) do
  if budget > 0 and used > budget then
    break
  end
  local record = redis.call('HGETALL', ARGV[1] .. id)
  for j = 2, #record, 2 do
    used = used + #record[j]
  end
  out[2] = i
  out[i + 2] = record
end
return out
