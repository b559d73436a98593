-- The last step of an account's delete (or the undo of its create): frees the username, only if
-- it still names this account, so a name taken again meanwhile by a new account stays taken.
-- KEYS: the username. ARGV: account id.
-- Returns 1 released, 0 it named another account or nothing.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
