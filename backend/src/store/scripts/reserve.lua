-- reserve.lua (loaded by store/scripts.rs)
-- KEYS: stock, buyers, seq, reserved, orders. ARGV: user_id, per_user_limit, now_ms.
-- Returns {seq, slot} when queued, or {0, reason}: 1 limit reached, 2 sold out, 3 not loaded.
local stock = redis.call('GET', KEYS[1])
if not stock then return {0, 3} end
local user = ARGV[1]
local limit = tonumber(ARGV[2])
local mask = tonumber(redis.call('HGET', KEYS[2], user) or '0')
local slot = -1
for s = 0, limit - 1 do
  if bit.band(mask, bit.lshift(1, s)) == 0 then slot = s break end
end
if slot < 0 then return {0, 1} end
if tonumber(stock) <= 0 then return {0, 2} end
redis.call('DECR', KEYS[1])
redis.call('HSET', KEYS[2], user, bit.bor(mask, bit.lshift(1, slot)))
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[4], seq, user .. ':' .. (slot + 1))
redis.call('XADD', KEYS[5], '*', 'seq', seq, 'user', user, 'slot', slot + 1, 'ts', ARGV[3])
return {seq, slot + 1}
