-- A page of records: ids by rank from a sorted set, then each record.
-- KEYS: the index. ARGV: record key prefix, first rank, last rank.
-- Returns {ids seen, record, record, ...}; a record that vanished is an empty array.
local ids = redis.call('ZRANGE', KEYS[1], ARGV[2], ARGV[3])
local out = {#ids}
for i, id in ipairs(ids) do
  out[i + 1] = redis.call('HGETALL', ARGV[1] .. id)
end
return out
