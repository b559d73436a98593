-- Gives a claim back (its trigger was refused or failed), unless another caller holds it now.
-- KEYS[1] the claim. ARGV[1] the value this caller wrote.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
