-- Checks a captcha answer statelessly against the token the backend issued (captcha.rs):
--   <user_id>.<sale_id>.<expires_s>.<nonce>.<hex HMAC-SHA256(captcha_key,
--       "c1.<user_id>.<sale_id>.<expires_s>.<nonce>.<ANSWER>")>
-- and spends the token in a shared dict: the first attempt, right or wrong, uses it up, so one
-- token cannot be replayed nor brute-forced. Failure policy: closed (if the use cannot be
-- recorded, the answer is refused).
local hmac = require "seckill.hmac"

local match = string.match
local upper = string.upper
local tonumber = tonumber

local _M = { _VERSION = "0.1" }

-- true, or nil and why: "malformed", "foreign", "expired", "used", "wrong".
function _M.check(key, used, token, answer, user_id, sale_id, now_s)
    if type(token) ~= "string" or #token > 200 then
        return nil, "malformed"
    end
    local u, s, exp, nonce, sig = match(token, "^(%d+)%.(%d+)%.(%d+)%.(%x+)%.(%x+)$")
    if not u or #nonce ~= 16 or #sig ~= 64 then
        return nil, "malformed"
    end
    if u ~= user_id or s ~= sale_id then
        return nil, "foreign"
    end
    local ttl = tonumber(exp) - now_s
    if ttl <= 0 then
        return nil, "expired"
    end
    local ok = used:add("cap:" .. nonce, true, ttl + 1)
    if not ok then
        return nil, "used"
    end
    if type(answer) ~= "string" or #answer == 0 or #answer > 16 then
        return nil, "wrong"
    end
    local want = hmac.sign(key, "c1." .. u .. "." .. s .. "." .. exp .. "." .. nonce .. "."
        .. upper(answer))
    if not hmac.equal(want, sig) then
        return nil, "wrong"
    end
    return true
end

return _M
