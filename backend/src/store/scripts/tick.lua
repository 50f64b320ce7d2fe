-- tick.lua (loaded by store/scripts.rs)
-- KEYS: state, seq (tickets), stock, bought (positions that ordered), log.
-- ARGV: now_ms, starts_ms, draw_at_ms (-1: no draw), admit_multiple, admit_ttl_ms.
-- Returns {cursor, expired_below, joined, drawn (-1: not yet), rate in milli-admissions a
-- second (-1: not known yet), paused 0|1, reopened 0|1, stock_left, operator rate (0: none),
-- lapsed (positions admitted longer ago than an admission lasts that did not order)},
-- or {-1} when the sale's stock is not in Redis.
local now, starts, draw_at = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local multiple, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local left = redis.call('GET', KEYS[3])
if not left then return {-1} end
left = tonumber(left)
local st = redis.call('HMGET', KEYS[1], 'cursor', 'drawn', 'paused', 'rate', 'credit', 'last',
  'soldout', 'first')
local cursor, drawn = tonumber(st[1] or '0'), tonumber(st[2] or '-1')
local paused, rate = st[3] == '1', tonumber(st[4] or '0')
local credit, last = tonumber(st[5] or '0'), tonumber(st[6] or now)
local soldout, first = st[7] == '1', tonumber(st[8] or '-1')
local joined = tonumber(redis.call('GET', KEYS[2]) or '0')
if draw_at >= 0 and drawn < 0 and now >= draw_at then
  drawn = joined
  redis.call('HSET', KEYS[1], 'drawn', drawn)
end
-- The samples: "t cursor", newest first, at most one a second.
local log = redis.call('LRANGE', KEYS[5], 0, -1)
local expired_below = 0
local rate_t, rate_c = nil, nil
for i = 1, #log do
  local t, c = string.match(log[i], '^(%d+) (%d+)')
  t, c = tonumber(t), tonumber(c)
  if t <= now - ttl then
    expired_below = c
    break
  end
  if t >= now - 10000 and first >= 0 and t >= first then rate_t, rate_c = t, c end
end
if now >= starts and (draw_at < 0 or drawn >= 0) then
  -- Admissions outstanding: admitted since expired_below, less those that ordered.
  local live = cursor - expired_below
    - redis.call('ZCOUNT', KEYS[4], '(' .. expired_below, cursor)
  local advance = left * multiple - live
  if paused then advance = 0 end
  if rate > 0 then
    credit = math.min(credit + rate * math.max(now - last, 0) / 1000, rate)
    if advance > math.floor(credit) then advance = math.floor(credit) end
  end
  if advance > joined - cursor then advance = joined - cursor end
  if advance > 0 then
    cursor = cursor + advance
    if rate > 0 then credit = credit - advance end
  end
  if first < 0 and cursor > 0 then
    -- The first admissions (the opening window) are not a rate: ETAs count from here.
    first = now
    redis.call('HSET', KEYS[1], 'first', first)
  end
  if left <= 0 then soldout = true end
end
redis.call('HSET', KEYS[1], 'cursor', cursor, 'credit', credit, 'last', now,
  'soldout', soldout and '1' or '0')
local head = log[1] and tonumber(string.match(log[1], '^(%d+)')) or nil
if not head or head <= now - 1000 then
  redis.call('LPUSH', KEYS[5], now .. ' ' .. cursor)
  redis.call('LTRIM', KEYS[5], 0, math.floor(ttl / 1000) + 20)
end
local per_s = -1
if rate_t and now - rate_t >= 1000 then
  per_s = math.floor((cursor - rate_c) * 1000000 / (now - rate_t))
end
return {cursor, expired_below, joined, drawn, per_s, paused and 1 or 0,
  (soldout and left > 0) and 1 or 0, left, rate,
  expired_below - redis.call('ZCOUNT', KEYS[4], 1, expired_below)}
