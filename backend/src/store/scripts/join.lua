-- join.lua (loaded by store/scripts.rs)
-- KEYS: tickets, seq, state. ARGV: user_id, now_ms, draw_at_ms (-1: no draw), again (1: the
-- edge checked that this shopper's turn came and passed unused: a new number at the back).
-- Closes the draw first if it is due (later joiners queue behind it), then returns
-- {number, 1 if new else 0}.
local draw_at = tonumber(ARGV[3])
if draw_at >= 0 and tonumber(ARGV[2]) >= draw_at
   and redis.call('HEXISTS', KEYS[3], 'drawn') == 0 then
  redis.call('HSET', KEYS[3], 'drawn', redis.call('GET', KEYS[2]) or '0')
end
local n = redis.call('HGET', KEYS[1], ARGV[1])
if n and ARGV[4] ~= '1' then return {tonumber(n), 0} end
n = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], n)
return {n, 1}
