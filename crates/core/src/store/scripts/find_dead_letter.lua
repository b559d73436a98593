-- Finds a dead letter by its stream id in its shard's list, which is capped but may be long, so
-- it is read in chunks and only as far as the letter. Read-only.
-- KEYS: the shard's dead-letter list.
-- ARGV: the needle, `"stream_id":"<id>"` as the letter's JSON writes it.
-- Returns {index, letter}, or nil when no letter has that id.
local chunk = 200
local start = 0
while true do
  local letters = redis.call('LRANGE', KEYS[1], start, start + chunk - 1)
  for i, letter in ipairs(letters) do
    if string.find(letter, ARGV[1], 1, true) then
      return {start + i - 1, letter}
    end
  end
  if #letters < chunk then
    return nil
  end
  start = start + chunk
end
