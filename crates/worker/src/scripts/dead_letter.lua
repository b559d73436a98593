-- Sets aside a job that keeps crashing workers: copies it to the dead-letter list (newest first,
-- capped) and removes it from the stream.
-- KEYS: the jobs stream, the dead-letter list.
-- ARGV: consumer group, stream id, times delivered, now (unix seconds), list cap.
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
redis.call('LPUSH', KEYS[2], cjson.encode({
  stream_id = ARGV[2], job = job, deliveries = tonumber(ARGV[3]), dead_at = tonumber(ARGV[4]),
}))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
