-- changes.lua (loaded by store/scripts.rs)
-- KEYS: the change log (a stream of entries {s = "id,id,..."}).
-- ARGV: the last entry id the caller has seen ("0-0": none yet), the most entries to return.
-- Returns {1, last id, sale id, ...}: the sales changed after the caller's id, and the id to
-- go on from; or {0, head id} when the caller must start over from a full list: entries it
-- has not seen were trimmed away, or its id is ahead of the log (a Redis that lost writes).
local function older(a, b)
  local a1, a2 = string.match(a, '^(%d+)-(%d+)$')
  local b1, b2 = string.match(b, '^(%d+)-(%d+)$')
  a1, a2, b1, b2 = tonumber(a1), tonumber(a2), tonumber(b1), tonumber(b2)
  return a1 < b1 or (a1 == b1 and a2 < b2)
end
local seen = ARGV[1]
if not string.match(seen, '^%d+%-%d+$') then return {0, '0-0'} end
if redis.call('EXISTS', KEYS[1]) == 0 then
  if seen == '0-0' then return {1, seen} end
  return {0, '0-0'}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local head, deleted = '0-0', '0-0'
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then head = info[i + 1] end
  if info[i] == 'max-deleted-entry-id' then deleted = info[i + 1] end
end
if older(head, seen) or older(seen, deleted) then return {0, head} end
local out = {1, seen}
local entries = redis.call('XRANGE', KEYS[1], '(' .. seen, '+', 'COUNT', tonumber(ARGV[2]))
for _, e in ipairs(entries) do
  out[2] = e[1]
  local f = e[2]
  for j = 1, #f, 2 do
    if f[j] == 's' then
      for id in string.gmatch(f[j + 1], '%d+') do out[#out + 1] = tonumber(id) end
    end
  end
end
return out
