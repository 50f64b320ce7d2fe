-- reserve_many.lua (loaded by store/scripts.rs)
-- KEYS: stock, buyers, seq, reserved, orders (one sale's, so one Cluster slot).
-- ARGV: per_user_limit, lease_ms, margin_ms (as in reserve.lua), then (user_id, now_ms) for
-- each buyer, in order.
-- Returns two numbers per buyer, in order: {seq, slot} when queued, or {0, reason} with the
-- reasons of reserve.lua; then the units left after the batch (-1: not loaded, or nothing
-- done). The writes are those of sequential reserve.lua calls, gathered: one read of the
-- masks, one HSET of masks, one HSET of owners, an XADD per order.
local out = {}
local function all(reason)
  for _ = 4, #ARGV, 2 do out[#out + 1] = 0; out[#out + 1] = reason end
  out[#out + 1] = -1
  return out
end
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[2]) - tonumber(ARGV[3]) then
  return all(4)
end
local stock = redis.call('GET', KEYS[1])
if not stock then return all(3) end
stock = tonumber(stock)
local limit = tonumber(ARGV[1])
local users = {}
for i = 4, #ARGV, 2 do users[#users + 1] = ARGV[i] end
local read = redis.call('HMGET', KEYS[2], unpack(users))
local masks = {}
for i, user in ipairs(users) do
  if masks[user] == nil then masks[user] = tonumber(read[i] or '0') end
end
local seq = tonumber(redis.call('GET', KEYS[3]) or '0')
local taken, changed, owners = 0, {}, {}
for i, user in ipairs(users) do
  local mask = masks[user]
  local slot = -1
  for s = 0, limit - 1 do
    if bit.band(mask, bit.lshift(1, s)) == 0 then slot = s break end
  end
  if slot < 0 then
    out[#out + 1] = 0; out[#out + 1] = 1
  elseif stock - taken <= 0 then
    out[#out + 1] = 0; out[#out + 1] = 2
  else
    taken = taken + 1
    seq = seq + 1
    masks[user] = bit.bor(mask, bit.lshift(1, slot))
    changed[user] = true
    owners[#owners + 1] = seq
    owners[#owners + 1] = user .. ':' .. (slot + 1)
    redis.call('XADD', KEYS[5], '*', 'seq', seq, 'user', user, 'slot', slot + 1, 'ts', ARGV[2 * i + 3])
    out[#out + 1] = seq; out[#out + 1] = slot + 1
  end
end
if taken > 0 then
  redis.call('DECRBY', KEYS[1], taken)
  redis.call('SET', KEYS[3], seq)
  redis.call('HSET', KEYS[4], unpack(owners))
  local fields = {}
  for _, user in ipairs(users) do
    if changed[user] then
      changed[user] = nil
      fields[#fields + 1] = user; fields[#fields + 1] = masks[user]
    end
  end
  redis.call('HSET', KEYS[2], unpack(fields))
end
out[#out + 1] = stock - taken
return out
