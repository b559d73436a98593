-- ARGV: prefix, kind ('account' | 'registration' | 'subscription'), id.
-- Returns 1 deleted, 0 missing, -1 refused (last admin).
local p, kind, id = ARGV[1], ARGV[2], ARGV[3]
if kind == 'account' then
  return remove_account(p, id)
elseif kind == 'registration' then
  return remove_registration(p, id)
else
  return remove_subscription(p, id)
end
