-- Deletes, with their cascades, up to ARGV[4] records of one kind from the front of its index,
-- starting at rank ARGV[3]. Admin accounts are kept and skipped over.
-- ARGV: prefix, kind ('account' | 'registration' | 'subscription'), offset, count.
-- Returns {deleted, kept, ids seen}.
local p, kind = ARGV[1], ARGV[2]
local offset, count = tonumber(ARGV[3]), tonumber(ARGV[4])
local index = p .. '{' .. kind .. 's}'
local ids = redis.call('ZRANGE', index, offset, offset + count - 1)
local deleted, kept = 0, 0
for _, id in ipairs(ids) do
  if kind == 'account' then
    if redis.call('SISMEMBER', p .. '{admins}', id) == 1 then
      kept = kept + 1
    else
      deleted = deleted + remove_account(p, id)
    end
  elseif kind == 'registration' then
    deleted = deleted + remove_registration(p, id)
  else
    deleted = deleted + remove_subscription(p, id)
  end
end
return {deleted, kept, #ids}
