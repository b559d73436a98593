-- Sets aside a job that keeps crashing workers: copies it to the dead-letter list (newest first,
-- capped) and removes it from the stream. The deliveries of a batch or retry job count as failed
-- on its trigger's summary, so `pending` does not stay up for ever.
-- KEYS: the jobs stream, the dead-letter list.
-- ARGV: consumer group, stream id, times delivered, now (unix seconds), list cap, key prefix.
local entries = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
local job = ''
if #entries == 1 then
  local fields = entries[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'job' then
      job = fields[i + 1]
    end
  end
end
local ok, parsed = pcall(cjson.decode, job)
if ok and type(parsed) == 'table' and type(parsed.triggered_id) == 'string' then
  local given_up = 0
  if parsed.type == 'deliver_batch.v1' and type(parsed.targets) == 'table' then
    given_up = #parsed.targets
  elseif parsed.type == 'retry.v1' then
    given_up = 1
  end
  local triggered = ARGV[6] .. 'triggered:' .. parsed.triggered_id
  if given_up > 0 and redis.call('EXISTS', triggered) == 1 then
    redis.call('HINCRBY', triggered, 'pending', -given_up)
    redis.call('HINCRBY', triggered, 'failed', given_up)
  end
end
redis.call('LPUSH', KEYS[2], cjson.encode({
  stream_id = ARGV[2], job = job, deliveries = tonumber(ARGV[3]), dead_at = tonumber(ARGV[4]),
}))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
