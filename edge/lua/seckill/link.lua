-- The hidden, signed purchase link (the backend's link.rs computes the same):
--   sig = hex HMAC-SHA256(link_key, "l1.<user_id>.<sale_id>.<window>"),
--   window = floor(now_s / window_s); valid in its window and the next.
-- Bound to user, sale and time: a link cannot be shared, guessed or kept for later.
-- Failure policy: closed (a link that does not verify is refused with 403).
local hmac = require "seckill.hmac"

local floor = math.floor

local _M = { _VERSION = "0.1" }

local function message(user_id, sale_id, window)
    return "l1." .. user_id .. "." .. sale_id .. "." .. window
end

function _M.sign(key, user_id, sale_id, now_s, window_s)
    return hmac.sign(key, message(user_id, sale_id, floor(now_s / window_s)))
end

function _M.verify(key, sig, user_id, sale_id, now_s, window_s)
    if type(sig) ~= "string" or #sig ~= 64 then
        return false
    end
    local w = floor(now_s / window_s)
    return hmac.equal(hmac.sign(key, message(user_id, sale_id, w)), sig)
        or hmac.equal(hmac.sign(key, message(user_id, sale_id, w - 1)), sig)
end

return _M
