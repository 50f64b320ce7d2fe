-- The waiting room at the edge (the backend's queue.rs holds the numbers and the cursor):
--   * tickets "<sale>.<user>.<number>.<hex HMAC-SHA256(key, "q1.<sale>.<user>.<number>")>",
--     verified here without a lookup; key = HMAC(link secret, "seckill queue ticket key v1");
--   * positions: in a fifo sale a ticket's position is its number; in a random sale the numbers
--     up to the draw (`drawn` of them) are shuffled by a keyed permutation (a Feistel network
--     over the smallest power of four that holds them, cycle-walked into 1..drawn), its round
--     keys derived from the link secret and the sale: a bijection nobody can predict without
--     the secret, different for every sale, computed by any edge alike;
--   * each ticket's status from the sale's state in the dict (sale_state.lua), with no backend
--     trip: admitted, waiting (position, how many ahead, an ETA), out of reach, sold out (and
--     on the waitlist), expired, or waiting for the draw.
-- Pure: the caller passes keys, state and time.
local hmac = require "seckill.hmac"
local bit = require "bit"

local band, bxor, rshift, lshift, tobit = bit.band, bit.bxor, bit.rshift, bit.lshift, bit.tobit
local match = string.match
local format = string.format
local floor = math.floor
local tonumber = tonumber

local _M = { _VERSION = "0.1" }

local ROUNDS = 6

function _M.ticket_key(link_key)
    return hmac.sign(link_key, "seckill queue ticket key v1")
end

function _M.sign(key, sale_id, user_id, number)
    local msg = "q1." .. sale_id .. "." .. user_id .. "." .. number
    return sale_id .. "." .. user_id .. "." .. number .. "." .. hmac.sign(key, msg)
end

-- Returns the user id and the number (both strings of digits) of a ticket that verifies and
-- was issued for `sale_id`; nil and a reason otherwise.
function _M.verify(key, ticket, sale_id)
    if type(ticket) ~= "string" or #ticket > 140 then
        return nil, "malformed"
    end
    local sale, user, number, sig = match(ticket, "^([1-9]%d*)%.([1-9]%d*)%.([1-9]%d*)%.(%x+)$")
    if not sale or #sale > 10 or #user > 20 or #number > 10 or #sig ~= 64 then
        return nil, "malformed"
    end
    if sale ~= sale_id then
        return nil, "another sale"
    end
    if not hmac.equal(hmac.sign(key, "q1." .. sale .. "." .. user .. "." .. number), sig) then
        return nil, "bad signature"
    end
    return user, number
end

-- The round keys of a sale's shuffle (20 bits each).
function _M.shuffle_keys(link_key, sale_id)
    local h = hmac.sign(link_key, "seckill queue shuffle v1." .. sale_id)
    local keys = {}
    for i = 1, ROUNDS do
        keys[i] = tonumber(h:sub(5 * i - 4, 5 * i), 16)
    end
    return keys
end

-- Products stay below 2^51, where LuaJIT's bit operations are exact.
local function round(r, k, mask)
    local y = tobit((r + k) * 0x2545F5)
    y = bxor(y, rshift(y, 15))
    y = tobit(band(y, 0x3FFFFF) * 0x1B873 + k)
    y = bxor(y, rshift(y, 13))
    return band(y, mask)
end

-- The position (1..size) of number n (1..size) in the draw shuffled with `keys`.
function _M.permute(keys, size, n)
    local half = 1
    while half < 15 and lshift(1, 2 * half) < size do
        half = half + 1
    end
    local mask = lshift(1, half) - 1
    local x = n - 1
    repeat
        local l, r = rshift(x, half), band(x, mask)
        for i = 1, ROUNDS do
            l, r = r, bxor(l, round(r, keys[i], mask))
        end
        x = l * (mask + 1) + r
    until x < size
    return x + 1
end

-- The place of ticket number `n` (nil before a random sale's draw) and whether the draw
-- shuffled it.
function _M.position(p, n, shuffle)
    if p.mode ~= 2 then
        return n, false
    end
    if p.drawn < 0 then
        return nil, true
    end
    if n <= p.drawn then
        return shuffle(p.drawn, n), true
    end
    return n, false
end

-- The status of ticket number `n` in a sale whose parsed state is `p` (mode > 0), at `now_ms`.
-- opts: reach (a shopper more than `reach` x units left behind the cursor is told the units
-- cannot reach them), shuffle (function(size, n) -> position, for random sales).
function _M.status(p, n, now_ms, opts)
    local s = { number = n, joined = p.joined, admitted = p.cursor, stock_left = p.left,
                paused = p.paused, reopened = p.reopened, admit_ttl_s = p.ttl_s,
                drawn = p.mode == 2 and p.drawn >= 0 and p.drawn or nil }
    if now_ms >= p.ends then
        s.state = "ended"
        return s
    end
    local open_at = p.mode == 2 and p.starts + p.grace_ms or p.starts
    local pos, in_draw = _M.position(p, n, opts.shuffle)
    s.in_draw = in_draw
    if not pos then
        -- Everyone who joined so far is in the draw; nobody has a place yet.
        s.state, s.draw_at_ms = "draw", open_at
        s.eta_s = open_at > now_ms and (open_at - now_ms) / 1000 or nil
        return s
    end
    s.position = pos
    local sold_out = p.sold or p.left <= 0
    if pos <= p.cursor then
        if pos <= p.expired_below then
            s.state = "expired"
        elseif sold_out then
            s.state, s.waitlist = "sold_out", true
        else
            s.state = "admitted"
        end
        return s
    end
    local ahead = pos - p.cursor - 1
    s.ahead = ahead
    if sold_out then
        -- Units may come back (unpaid orders expire): the place is kept, the page says so.
        s.state, s.waitlist = "sold_out", true
        return s
    end
    if ahead >= p.left * opts.reach then
        s.state = "out_of_reach"
    else
        s.state = "waiting"
    end
    if p.paused then
        return s
    end
    if p.cursor == 0 and now_ms < open_at then
        -- The opening admits the first `multiple` x units at once.
        if pos <= p.left * p.multiple then
            s.eta_s = (open_at - now_ms) / 1000
        end
    elseif p.rate > 0 then
        s.eta_s = (ahead + 1) / p.rate
    end
    return s
end

local function num(v)
    if v == nil then
        return "null"
    end
    if v == floor(v) then
        return format("%d", v)
    end
    return format("%.1f", v)
end

local function bool(v)
    return v and "true" or "false"
end

-- The JSON answer of a poll.
function _M.render(s, now_ms)
    return format('{"state":"%s","number":%s,"position":%s,"ahead":%s,"eta_s":%s,'
        .. '"joined":%s,"admitted":%s,"stock_left":%s,"admit_ttl_s":%s,"in_draw":%s,'
        .. '"draw_at_ms":%s,"drawn":%s,"paused":%s,"waitlist":%s,"reopened":%s,"now_ms":%d}',
        s.state, num(tonumber(s.number)), num(s.position), num(s.ahead), num(s.eta_s),
        num(s.joined), num(s.admitted), num(s.stock_left), num(s.admit_ttl_s), bool(s.in_draw),
        num(s.draw_at_ms), num(s.drawn), bool(s.paused), bool(s.waitlist), bool(s.reopened),
        now_ms)
end

return _M
