-- Single use of a signed token (a captcha, a proof-of-work challenge), shared by both: once the
-- caller has checked the token's MAC, this checks its lifetime against what the edge issues
-- and spends its nonce in a shared dict for exactly the token's remaining life.
-- Failure policy: closed. `safe_add` never evicts: a full dict refuses the spend (and so the
-- token) rather than drop another spent nonce, which would make that token usable again.
local tonumber = tonumber

local _M = { _VERSION = "0.1" }

-- true, or nil and why: "expired", "forged" (lives longer than the edge ever issues: a key
-- leak or a misconfiguration), "used", "store_full".
function _M.spend(dict, key, expires_s, now_s, max_ttl)
    local ttl = tonumber(expires_s) - now_s
    if ttl <= 0 then
        return nil, "expired"
    end
    if ttl > max_ttl then
        return nil, "forged"
    end
    local ok, err = dict:safe_add(key, true, ttl)
    if not ok then
        return nil, err == "exists" and "used" or "store_full"
    end
    return true
end

return _M
