-- release.lua (loaded by store/scripts.rs)
-- KEYS: stock, buyers, returned. ARGV: seq, user_id, slot.
-- Returns 1 when the unit went back now, 0 when this order's unit was returned before, -1
-- when the sale is not loaded (Redis lost it: the repair from MariaDB counts the unit).
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('SADD', KEYS[3], ARGV[1]) == 0 then return 0 end
redis.call('INCR', KEYS[1])
local mask = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
local left = bit.band(mask, bit.bnot(bit.lshift(1, tonumber(ARGV[3]) - 1)))
if left == 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
else
  redis.call('HSET', KEYS[2], ARGV[2], left)
end
return 1
