-- repair.lua (loaded by store/scripts.rs)
-- KEYS: stock, buyers, seq, reserved, returned, gen.
-- ARGV: initial stock, highest seq in MariaDB, gap, n, the sale's new generation (store/fence.rs),
-- then n triples (seq, user, slot) of the orders MariaDB holds live, then the seqs MariaDB
-- holds cancelled.
-- Makes Redis agree with MariaDB where MariaDB has decided (live orders Redis forgot are
-- added back; cancelled orders count as returned), then recounts stock, buyers and the
-- sequence from the ledger in one atomic step.
-- Returns {live, stock_left, orders_added, units_revived}.
local initial = tonumber(ARGV[1])
local n = tonumber(ARGV[4])
local added, revived = 0, 0
local i = 6
for _ = 1, n do
  if redis.call('HSETNX', KEYS[4], ARGV[i], ARGV[i + 1] .. ':' .. ARGV[i + 2]) == 1 then
    added = added + 1
  end
  revived = revived + redis.call('SREM', KEYS[5], ARGV[i])
  i = i + 3
end
for j = i, #ARGV do redis.call('SADD', KEYS[5], ARGV[j]) end
local all = redis.call('HGETALL', KEYS[4])
local live, top, masks = 0, tonumber(ARGV[2]), {}
for j = 1, #all, 2 do
  local seq = tonumber(all[j])
  if seq > top then top = seq end
  if redis.call('SISMEMBER', KEYS[5], all[j]) == 0 then
    live = live + 1
    local user, slot = string.match(all[j + 1], '^(%d+):(%d+)$')
    masks[user] = bit.bor(masks[user] or 0, bit.lshift(1, tonumber(slot) - 1))
  end
end
redis.call('DEL', KEYS[2])
for user, mask in pairs(masks) do redis.call('HSET', KEYS[2], user, mask) end
local left = initial - live
if left < 0 then left = 0 end
redis.call('SET', KEYS[1], left)
local cur = tonumber(redis.call('GET', KEYS[3]) or '0')
if cur > top then top = cur end
redis.call('SET', KEYS[3], top + tonumber(ARGV[3]))
-- Two backends may rebuild at once: the generation only goes up.
if tonumber(ARGV[5]) > tonumber(redis.call('GET', KEYS[6]) or '0') then
  redis.call('SET', KEYS[6], ARGV[5])
end
return {live, left, added, revived}
