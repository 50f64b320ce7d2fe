-- Verifies the shopper's session token, the format the backend issues (session.rs):
--   <user_id>.<expires_s>.<hex HMAC-SHA256(session_key, "s1.<user_id>.<expires_s>")>
-- Pure: the caller passes the key and the time. Failure policy: closed (no valid token, no buy).
local hmac = require "seckill.hmac"

local match = string.match
local sub = string.sub

local _M = { _VERSION = "0.1" }

-- Returns the user id (a string of digits), or nil and a short reason.
function _M.verify(key, token, now_s)
    if type(token) ~= "string" or #token > 200 then
        return nil, "malformed"
    end
    local user, exp, sig = match(token, "^([1-9]%d*)%.([1-9]%d*)%.(%x+)$")
    if not user or #user > 20 or #exp > 20 then
        return nil, "malformed"
    end
    local want = hmac.sign(key, "s1." .. user .. "." .. exp)
    if not hmac.equal(want, sig) then
        return nil, "bad signature"
    end
    if tonumber(exp) <= now_s then
        return nil, "expired"
    end
    return user
end

-- The token from "Authorization: Bearer <t>" or the sk_session cookie.
function _M.token_from(authorization, cookie)
    if authorization and sub(authorization, 1, 7) == "Bearer " then
        return sub(authorization, 8)
    end
    return cookie
end

return _M
