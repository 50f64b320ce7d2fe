-- The access-phase gate of the buy route: the checks the edge can decide alone, before a
-- request costs the backend anything. A forged, expired, replayed-by-another-user or
-- altered link never leaves nginx. Failure policy: closed for every check here.
local config = require "seckill.config"
local session = require "seckill.session"
local link = require "seckill.link"
local sale_state = require "seckill.sale_state"
local limit = require "seckill.limit"

local ngx = ngx
local ngx_time = ngx.time
local ngx_now = ngx.now
local ngx_say = ngx.say
local ngx_exit = ngx.exit

local _M = { _VERSION = "0.1" }

local BODIES = {
    [401] = '{"error":"unauthorized","message":"session: missing (log in first)"}',
    [403] = '{"error":"bad_link","message":"purchase link: invalid, expired, or issued to someone else"}',
    bad_session = '{"error":"bad_session","message":"session: invalid or expired"}',
    [429] = '{"error":"rate_limited","message":"too many requests, slow down"}',
}

local function reject(status, body)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Cache-Control"] = "no-store"
    ngx_say(body)
    return ngx_exit(status)
end

-- True when `key` is over `per_s` requests in this second (a limiter fault is logged and
-- lets the request pass: see limit.lua).
local function over_limit(limits, key, per_s, now)
    local ok, err = limit.allow(limits, key, per_s, 1, now)
    if err then
        ngx.log(ngx.WARN, err)
    end
    return not ok
end

-- Checks sale state, rate limits (per address, per user), session and link for POST /api/sales/{sale_id}/buy/{sig}, cheapest
-- first: a dict lookup refuses the crowd before and after the sale without any HMAC.
function _M.buy(sale_id, sig)
    local cfg = config.get()
    local status, body = sale_state.check(ngx.shared[cfg.sales_dict], sale_id, ngx_now() * 1000)
    if status then
        return reject(status, body)
    end
    local now = ngx_time()
    -- ngx.var.remote_addr is the real client: the realip module trusts X-Forwarded-For only
    -- from the proxies nginx.conf lists (set_real_ip_from).
    local limits = ngx.shared[cfg.limits_dict]
    local now_f = ngx_now()
    if over_limit(limits, "ip:" .. ngx.var.remote_addr, cfg.ip_per_s, now_f) then
        return reject(429, BODIES[429])
    end
    local token = session.token_from(ngx.var.http_authorization, ngx.var.cookie_sk_session)
    if not token then
        return reject(401, BODIES[401])
    end
    local user_id = session.verify(cfg.session_key, token, now)
    if not user_id then
        return reject(403, BODIES.bad_session)
    end
    if over_limit(limits, "user:" .. user_id, cfg.user_per_s, now_f) then
        return reject(429, BODIES[429])
    end
    if not link.verify(cfg.link_key, sig, user_id, sale_id, now, cfg.link_window_s) then
        return reject(403, BODIES[403])
    end
end

return _M
