-- reserve.lua (loaded by store/scripts.rs)
-- KEYS: stock, buyers, seq, reserved, orders.
-- ARGV: user_id, per_user_limit, now_ms, lease_ms (the end of the sale's lease in the active
-- set), margin_ms.
-- Returns {seq, slot, units left} when queued, or {0, reason, units left or -1}: 1 limit
-- reached, 2 sold out, 3 not loaded, 4 the lease ends within the margin (nothing done: take a
-- new lease and call again; see store/activity.rs).
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[4]) - tonumber(ARGV[5]) then
  return {0, 4, -1}
end
local stock = redis.call('GET', KEYS[1])
if not stock then return {0, 3, -1} end
local user = ARGV[1]
local limit = tonumber(ARGV[2])
local mask = tonumber(redis.call('HGET', KEYS[2], user) or '0')
local slot = -1
for s = 0, limit - 1 do
  if bit.band(mask, bit.lshift(1, s)) == 0 then slot = s break end
end
if slot < 0 then return {0, 1, tonumber(stock)} end
if tonumber(stock) <= 0 then return {0, 2, 0} end
redis.call('DECR', KEYS[1])
redis.call('HSET', KEYS[2], user, bit.bor(mask, bit.lshift(1, slot)))
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[4], seq, user .. ':' .. (slot + 1))
redis.call('XADD', KEYS[5], '*', 'seq', seq, 'user', user, 'slot', slot + 1, 'ts', ARGV[3])
return {seq, slot + 1, tonumber(stock) - 1}
