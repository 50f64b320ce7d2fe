-- restock.lua (loaded by store/scripts.rs)
-- KEYS: stock, reserved. ARGV: the new stock.
-- Sets a sale's stock before anything was reserved (an operator changed it before the
-- start). Returns 1 when set, 0 when orders exist (nothing changed).
if redis.call('HLEN', KEYS[2]) > 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
