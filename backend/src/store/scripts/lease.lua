-- lease.lua (loaded by store/scripts.rs)
-- KEYS: the active set (a sorted set: sale id -> registered until, ms of this node's clock).
-- ARGV: lease_ms, at_least_ms (an absolute floor, 0: none), then the sale ids.
-- Registers the sales as busy until now + lease_ms (or at_least_ms, if later), never
-- shortening a lease already given. Returns that time: the reserve scripts refuse to add to
-- a sale's stream once it is near (see store/activity.rs).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local till = now + tonumber(ARGV[1])
local floor = tonumber(ARGV[2])
if floor > till then till = floor end
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], 'GT', till, ARGV[i])
end
return till
