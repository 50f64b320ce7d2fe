-- ledger.lua (loaded by store/scripts.rs)
-- KEYS: stock, reserved, returned. A consistent read of the ledger:
-- {stock or -1, [seq, user:slot, ...], [returned seq, ...]}.
local stock = redis.call('GET', KEYS[1])
return {tonumber(stock or '-1'), redis.call('HGETALL', KEYS[2]), redis.call('SMEMBERS', KEYS[3])}
