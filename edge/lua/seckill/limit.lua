-- Fixed-window rate limiter on a lua_shared_dict: at most `limit` requests per `window`
-- seconds per key. One atomic dict:incr per request, shared by all workers, kept across
-- `nginx -s reload`. A fixed window may let up to 2 x limit through across a window edge;
-- that is the price of one operation per request, and the backend's per-user limit in
-- Redis is the real guard against double buying.
-- Failure policy: open. If the dict is full the request passes (and the error is logged):
-- a limiter fault must not turn the sale off.
local floor = math.floor

local _M = { _VERSION = "0.1" }

-- Returns true when the request may pass, false when it is over the limit.
function _M.allow(dict, key, limit, window, now)
    if not dict then
        error("limit.allow: shared dict not found", 2)
    end
    local k = key .. ":" .. floor(now / window)
    local n, err = dict:incr(k, 1, 0, window + 1)
    if not n then
        return true, "failed to count " .. key .. ": " .. tostring(err)
    end
    return n <= limit
end

return _M
