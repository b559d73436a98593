-- Reads one page of a fan-out in the registration's slot, without writing: the next subscription
-- rows after the cursor, each with its score, its subscriber account id (from the map beside
-- the index, '' when missing) and its filter (from the filter map), given as a number into the
-- page's list of distinct filter texts ('0' for none): many subscriptions share one filter, and
-- a page then carries its text once. When a row of the page has a filter, the registration's
-- payload comes with the page, for the filters to be evaluated against (the trigger's own
-- payload, when it has one, is read beside this script). Rows of ordered subscriptions are
-- named by their place in the page (from the order map; one EXISTS when there are none).
--
-- KEYS: the registration's subscriptions zset, its subscriber accounts hash, its subscriber
--       filters hash, the registration hash, its subscriber order hash.
-- ARGV: page size, after score ('' on the first page), after subscription id.
-- Returns {a flat list of (subscription id, score, account id, filter number) quadruples, the
-- distinct filter texts, the registration's event_data or '' when no row has a filter, the
-- numbers (from 1) of the page's rows that are ordered}.
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
  return {out, {}, '', {}}
end
local ids = {}
for i = 1, #rows, 2 do
  ids[#ids + 1] = rows[i]
end
local accounts = redis.call('HMGET', KEYS[2], unpack(ids))
-- Most registrations have no filtered subscriber: one EXISTS spares the HMGET.
local filters = {}
if redis.call('EXISTS', KEYS[3]) == 1 then
  filters = redis.call('HMGET', KEYS[3], unpack(ids))
end
local ordered = {}
if redis.call('EXISTS', KEYS[5]) == 1 then
  local flags = redis.call('HMGET', KEYS[5], unpack(ids))
  for i = 1, #ids do
    if flags[i] then
      ordered[#ordered + 1] = tostring(i)
    end
  end
end
local distinct, number_of = {}, {}
for i = 1, #ids do
  out[#out + 1] = ids[i]
  out[#out + 1] = rows[i * 2]
  out[#out + 1] = accounts[i] or ''
  local filter = filters[i]
  local number = 0
  if filter then
    number = number_of[filter]
    if not number then
      distinct[#distinct + 1] = filter
      number = #distinct
      number_of[filter] = number
    end
  end
  out[#out + 1] = tostring(number)
end
local payload = ''
if #distinct > 0 then
  payload = redis.call('HGET', KEYS[4], 'event_data') or ''
end
return {out, distinct, payload, ordered}
