-- retire.lua (loaded by store/scripts.rs)
-- KEYS: the active set. ARGV: pairs of (sale id, the lease it had when its stream was seen
-- drained). Removes each sale whose lease is still that one: a sale registered again since
-- (a new buy, a unit returned) stays. Returns how many were removed.
local n = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
