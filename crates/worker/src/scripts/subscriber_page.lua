-- Reads one page of a fan-out in the registration's slot, without writing: the next subscription
-- rows after the cursor, each with its score and its subscriber account id (from the index
-- beside it, '' when missing).
--
-- KEYS: the registration's subscriptions zset, its subscriber accounts hash.
-- ARGV: page size, after score ('' on the first page), after subscription id.
-- Returns a flat list of (subscription id, score, account id) triples.
local size = tonumber(ARGV[1])
local after_score, after_id = ARGV[2], ARGV[3]

-- Rows after the cursor: first those sharing its score with a greater id, then later scores.
local rows = {}
if after_score == '' then
  rows = redis.call('ZRANGE', KEYS[1], '-inf', '+inf', 'BYSCORE', 'LIMIT', 0, size, 'WITHSCORES')
else
  local ties = redis.call('ZRANGE', KEYS[1], after_score, after_score, 'BYSCORE', 'WITHSCORES')
  for i = 1, #ties, 2 do
    if ties[i] > after_id and #rows < size * 2 then
      rows[#rows + 1] = ties[i]
      rows[#rows + 1] = ties[i + 1]
    end
  end
  local wanted = size - #rows / 2
  if wanted > 0 then
    local later = redis.call('ZRANGE', KEYS[1], '(' .. after_score, '+inf', 'BYSCORE',
      'LIMIT', 0, wanted, 'WITHSCORES')
    for i = 1, #later do
      rows[#rows + 1] = later[i]
    end
  end
end

local out = {}
if #rows == 0 then
  return out
end
local ids = {}
for i = 1, #rows, 2 do
  ids[#ids + 1] = rows[i]
end
local accounts = redis.call('HMGET', KEYS[2], unpack(ids))
for i = 1, #ids do
  out[#out + 1] = ids[i]
  out[#out + 1] = rows[i * 2]
  out[#out + 1] = accounts[i] or ''
end
return out
