-- The access-phase gate of the buy route: every check the edge can decide alone, cheapest
-- first, before a request costs the backend anything. A forged, expired, altered or
-- another user's link never leaves nginx. Each refusal and each pass is counted by reason.
-- Failure policies: session and link closed; sale state, limits and admission open (see
-- their modules): they shed load, the Redis script is what guarantees the stock.
local config = require "seckill.config"
local session = require "seckill.session"
local link = require "seckill.link"
local sale_state = require "seckill.sale_state"
local limit = require "seckill.limit"
local admission = require "seckill.admission"
local metrics = require "seckill.metrics"
local captcha = require "seckill.captcha"

local ngx = ngx
local ngx_time = ngx.time
local ngx_now = ngx.now
local ngx_say = ngx.say
local ngx_exit = ngx.exit

local _M = { _VERSION = "0.1" }

-- reason -> status, body (the backend's error shape).
local REFUSALS = {
    not_started = { 425, '{"error":"not_started","message":"the sale has not started yet"}' },
    ended = { 410, '{"error":"ended","message":"the sale has ended"}' },
    sold_out = { 410, '{"error":"sold_out","message":"sold out"}' },
    rate_limited_ip = { 429, '{"error":"rate_limited","message":"too many requests, slow down"}' },
    rate_limited_user = { 429, '{"error":"rate_limited","message":"too many requests, slow down"}' },
    no_session = { 401, '{"error":"unauthorized","message":"session: missing (log in first)"}' },
    bad_session = { 403, '{"error":"bad_session","message":"session: invalid or expired"}' },
    bad_link = { 403, '{"error":"bad_link",'
        .. '"message":"purchase link: invalid, expired, or issued to someone else"}' },
    unknown_sale = { 404, '{"error":"not_found","message":"no such sale (or not yet known)"}' },
    bad_captcha = { 403, '{"error":"bad_captcha",'
        .. '"message":"captcha: wrong, expired, already used, or issued to someone else"}' },
    over_admission = { 429, '{"error":"try_later",'
        .. '"message":"too many buyers right now for the units left, try again"}' },
}

-- The location sets Content-Type (default_type) and Cache-Control (add_header) in C.
local function refuse(reason, route)
    metrics.inc(route or "buy", reason)
    local r = REFUSALS[reason]
    ngx.status = r[1]
    ngx_say(r[2])
    return ngx_exit(r[1])
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

-- Answers POST /api/sales/{sale_id}/path itself: after a correct captcha, and only once the
-- sale has started, it hands out the signed purchase path. Fields `captcha_token` and
-- `answer` come as a form body or as query arguments.
function _M.path(sale_id)
    local cfg = config.get()
    local shared = ngx.shared
    local now_f = ngx_now()
    local reason, stock_left = sale_state.check(shared[cfg.sales_dict], sale_id, now_f * 1000)
    if reason then
        return refuse(reason, "path")
    end
    if not stock_left then
        return refuse("unknown_sale", "path")
    end
    local limits = shared[cfg.limits_dict]
    if over_limit(limits, "ip:" .. ngx.var.remote_addr, cfg.ip_per_s, now_f) then
        return refuse("rate_limited_ip", "path")
    end
    local token = session.token_from(ngx.var.http_authorization, ngx.var.cookie_sk_session)
    if not token then
        return refuse("no_session", "path")
    end
    local now = ngx_time()
    local user_id = session.verify(cfg.session_key, token, now)
    if not user_id then
        return refuse("bad_session", "path")
    end
    if over_limit(limits, "user:" .. user_id, cfg.user_per_s, now_f) then
        return refuse("rate_limited_user", "path")
    end
    ngx.req.read_body()
    local args = ngx.req.get_post_args(8)
    local uri_args = ngx.req.get_uri_args(8)
    local ok = captcha.check(cfg.captcha_key, shared[cfg.captcha_dict],
        args.captcha_token or uri_args.captcha_token, args.answer or uri_args.answer,
        user_id, sale_id, now)
    if not ok then
        return refuse("bad_captcha", "path")
    end
    local sig = link.sign(cfg.link_key, user_id, sale_id, now, cfg.link_window_s)
    metrics.inc("path", "issued")
    ngx_say('{"path":"/api/sales/', sale_id, '/buy/', sig, '"}')
end

-- Checks POST /api/sales/{sale_id}/buy/{sig}; returns only when the request may go on.
function _M.buy(sale_id, sig)
    local cfg = config.get()
    local shared = ngx.shared
    local now_f = ngx_now()
    local reason, stock_left = sale_state.check(shared[cfg.sales_dict], sale_id, now_f * 1000)
    if reason then
        return refuse(reason)
    end
    -- ngx.var.remote_addr is the real client: the realip module trusts X-Forwarded-For only
    -- from the proxies nginx.conf lists (set_real_ip_from).
    local limits = shared[cfg.limits_dict]
    if over_limit(limits, "ip:" .. ngx.var.remote_addr, cfg.ip_per_s, now_f) then
        return refuse("rate_limited_ip")
    end
    local token = session.token_from(ngx.var.http_authorization, ngx.var.cookie_sk_session)
    if not token then
        return refuse("no_session")
    end
    local now = ngx_time()
    local user_id = session.verify(cfg.session_key, token, now)
    if not user_id then
        return refuse("bad_session")
    end
    if over_limit(limits, "user:" .. user_id, cfg.user_per_s, now_f) then
        return refuse("rate_limited_user")
    end
    if not link.verify(cfg.link_key, sig, user_id, sale_id, now, cfg.link_window_s) then
        return refuse("bad_link")
    end
    local ok, err = admission.allow(limits, sale_id, stock_left, cfg.admission_multiple, now_f)
    if err then
        ngx.log(ngx.WARN, err)
    end
    if not ok then
        return refuse("over_admission")
    end
    metrics.inc("buy", "passed")
end

return _M
