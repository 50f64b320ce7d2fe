-- Checks a captcha answer statelessly against the token the backend issued (captcha.rs):
--   <user_id>.<sale_id>.<expires_s>.<nonce>.<answer_mac>.<token_mac>
--   answer_mac = hex HMAC-SHA256(captcha_key, "c1.<user>.<sale>.<expires_s>.<nonce>.<ANSWER>")
--   token_mac  = hex HMAC-SHA256(captcha_key, "c2.<user>.<sale>.<expires_s>.<nonce>.<answer_mac>")
-- The token's own MAC and its lifetime (at most `max_ttl` seconds ahead, the backend's
-- SECKILL_CAPTCHA_TTL_S) are checked before anything is stored: a made-up token never
-- reaches the dict. Then the nonce is spent for as long as the token could live, and only
-- then is the answer compared: the first attempt, right or wrong, uses the token up, so one
-- token can be neither replayed nor brute-forced.
-- Failure policy: closed (if the use cannot be recorded, the answer is refused).
local hmac = require "seckill.hmac"
local single_use = require "seckill.single_use"

local match = string.match
local upper = string.upper

local _M = { _VERSION = "0.2" }

-- true, or nil and why: "malformed", "foreign", "forged", "expired", "used", "wrong",
-- "store_full" (the spent-token dict has no room: refused, never evicting).
function _M.check(key, used, token, answer, user_id, sale_id, now_s, max_ttl)
    if type(token) ~= "string" or #token > 256 then
        return nil, "malformed"
    end
    local u, s, exp, nonce, answer_mac, token_mac =
        match(token, "^(%d+)%.(%d+)%.(%d+)%.(%x+)%.(%x+)%.(%x+)$")
    if not u or #nonce ~= 16 or #answer_mac ~= 64 or #token_mac ~= 64 or #exp > 12 then
        return nil, "malformed"
    end
    if u ~= user_id or s ~= sale_id then
        return nil, "foreign"
    end
    local signed = "c2." .. u .. "." .. s .. "." .. exp .. "." .. nonce .. "." .. answer_mac
    if not hmac.equal(hmac.sign(key, signed), token_mac) then
        return nil, "forged"
    end
    local spent, why = single_use.spend(used, "cap:" .. nonce, exp, now_s, max_ttl)
    if not spent then
        return nil, why
    end
    if type(answer) ~= "string" or #answer == 0 or #answer > 16 then
        return nil, "wrong"
    end
    local want = hmac.sign(key, "c1." .. u .. "." .. s .. "." .. exp .. "." .. nonce .. "."
        .. upper(answer))
    if not hmac.equal(want, answer_mac) then
        return nil, "wrong"
    end
    return true
end

return _M
