-- One page of a fan-out, atomically: read the next page of subscription rows of a registration,
-- skip subscribers at or over max_failed_count, queue one deliver_batch.v1 job for the rest,
-- queue the next page's fan_out.v1 job if the page was full, and acknowledge this job. A crash
-- before the script leaves the job to be reclaimed; after it, every batch exists exactly once.
--
-- KEYS: the registration's subscriptions zset, the jobs stream, the triggered record.
-- ARGV: prefix, consumer group, this job's stream id, page size, after score ('' on the first
--       page), after subscription id, max_failed_count, triggered id, registration id,
--       request id ('' for none).
-- Returns {targets queued, subscribers skipped, 1 if another page follows else 0}.
local p, group, entry = ARGV[1], ARGV[2], ARGV[3]
local size = tonumber(ARGV[4])
local after_score, after_id = ARGV[5], ARGV[6]
local max_failed = tonumber(ARGV[7])
local tid, rid, req = ARGV[8], ARGV[9], ARGV[10]

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

local request = ''
if req ~= '' then
  request = ',"request_id":"' .. req .. '"'
end

local targets, skipped = {}, 0
local last_id, last_score = nil, nil
for i = 1, #rows, 2 do
  local sid = rows[i]
  last_id, last_score = sid, rows[i + 1]
  local aid = redis.call('HGET', p .. 'subscription:{' .. sid .. '}', 'account_id')
  if aid then
    local failed = tonumber(redis.call('HGET', p .. 'account:{' .. aid .. '}', 'failed_count'))
    if failed == nil or failed >= max_failed then
      skipped = skipped + 1
    else
      targets[#targets + 1] = '{"subscription_id":"' .. sid .. '","account_id":"' .. aid .. '"}'
    end
  end
end

if #targets > 0 then
  redis.call('XADD', KEYS[2], '*', 'job',
    '{"type":"deliver_batch.v1","triggered_id":"' .. tid .. '","registration_id":"' .. rid .. '"'
    .. request .. ',"targets":[' .. table.concat(targets, ',') .. ']}')
end
local exists = redis.call('EXISTS', KEYS[3]) == 1
if exists and #targets > 0 then
  redis.call('HINCRBY', KEYS[3], 'pending', #targets)
end
if exists and skipped > 0 then
  redis.call('HINCRBY', KEYS[3], 'skipped', skipped)
end

local more = 0
if #rows / 2 >= size then
  more = 1
  redis.call('XADD', KEYS[2], '*', 'job',
    '{"type":"fan_out.v1","triggered_id":"' .. tid .. '","registration_id":"' .. rid .. '"'
    .. request .. ',"after":{"score":' .. last_score .. ',"subscription_id":"' .. last_id .. '"}}')
end
redis.call('XACK', KEYS[2], group, entry)
redis.call('XDEL', KEYS[2], entry)
return {#targets, skipped, more}
