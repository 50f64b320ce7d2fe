-- active.lua (loaded by store/scripts.rs)
-- KEYS: the active set. No ARGV.
-- Returns {now_ms of this node's clock, sale id, lease, sale id, lease, ...}: the busy sales
-- and the clock their leases are measured by, read together.
local t = redis.call('TIME')
local out = {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #all do out[#out + 1] = tonumber(all[i]) end
return out
