-- The edge's gate for every guarded shopper route: each check it can decide alone, cheapest
-- first, before a request costs the backend anything. Routes (nginx.conf, one location each):
--   POST /api/sales/{id}/pow          answered here: a proof-of-work challenge (pow.lua)
--   POST /api/sales/{id}/captcha      checked here (the solved challenge), drawn by the backend
--   POST /api/sales/{id}/path         answered here: the signed link, after a correct captcha
--   POST /api/sales/{id}/buy/{sig}    checked here (the link, admission), reserved by the backend
-- A forged, expired, altered or another user's link or token never leaves nginx. Each refusal
-- and each pass is counted by route and reason.
-- Failure policies: session, link, captcha and proof of work closed; sale state, limits and
-- admission open (see their modules): they shed load, the Redis script guarantees the stock.
local config = require "seckill.config"
local session = require "seckill.session"
local link = require "seckill.link"
local sale_state = require "seckill.sale_state"
local limit = require "seckill.limit"
local admission = require "seckill.admission"
local metrics = require "seckill.metrics"
local captcha = require "seckill.captcha"
local pow = require "seckill.pow"
local hmac = require "seckill.hmac"

local ngx = ngx
local ngx_now = ngx.now
local ngx_say = ngx.say
local ngx_exit = ngx.exit
local floor = math.floor

local _M = { _VERSION = "0.2" }

-- Captchas and challenges are handed out from this long before the start (captcha.rs).
local EARLY_MS = 60000

-- reason -> status, body. The one place for the edge's refusal bodies; they keep the
-- backend's error shape ({"error": code, "message": what was wrong}).
local REFUSALS = {
    method = { 405, '{"error":"method_not_allowed","message":"use POST on this path"}' },
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
    bad_pow = { 403, '{"error":"bad_pow","message":"proof of work: missing, not solved, '
        .. 'expired, already used, or issued to someone else"}' },
    over_admission = { 429, '{"error":"try_later",'
        .. '"message":"too many buyers right now for the units left, try again"}' },
}

-- The location sets Content-Type (default_type) and Cache-Control (add_header) in C.
local function refuse(reason, route)
    metrics.inc(route, reason)
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

-- What every guarded route checks first, cheapest first: the method, the sale's state (open
-- `early_ms` before its start), the per-address limit, the session, the per-user limit.
-- Returns the config, the user id, the units left (nil if the edge does not know the sale)
-- and the time; or refuses the request and returns nothing.
local function admit(route, sale_id, early_ms)
    if ngx.req.get_method() ~= "POST" then
        return refuse("method", route)
    end
    local cfg = config.get()
    local now_f = ngx_now()
    local reason, stock_left = sale_state.check(cfg.sales, sale_id, now_f * 1000, early_ms)
    if reason then
        return refuse(reason, route)
    end
    -- ngx.var.remote_addr is the real client: the realip module trusts X-Forwarded-For only
    -- from the proxies nginx.conf lists (set_real_ip_from).
    if over_limit(cfg.limits, "ip:" .. ngx.var.remote_addr, cfg.ip_per_s, now_f) then
        return refuse("rate_limited_ip", route)
    end
    local token = session.token_from(ngx.var.http_authorization, ngx.var.cookie_sk_session)
    if not token then
        return refuse("no_session", route)
    end
    local user_id = session.verify(cfg.session_key, token, floor(now_f))
    if not user_id then
        return refuse("bad_session", route)
    end
    -- What the backend sees is exactly the session checked here: nginx's cookie parser and
    -- the backend's could otherwise pick different tokens out of one Cookie header.
    ngx.req.set_header("Authorization", "Bearer " .. token)
    ngx.req.clear_header("Cookie")
    if over_limit(cfg.limits, "user:" .. user_id, cfg.user_per_s, now_f) then
        return refuse("rate_limited_user", route)
    end
    return cfg, user_id, stock_left, now_f
end

-- Answers POST /api/sales/{sale_id}/pow itself: a proof-of-work challenge for this shopper
-- and sale, or {"bits":0} when the operator turned proof of work off.
function _M.pow(sale_id)
    local cfg, user_id, _, now_f = admit("pow", sale_id, EARLY_MS)
    if not cfg then
        return
    end
    local issued = cfg.limits:incr("powrate:" .. sale_id .. ":" .. floor(now_f), 1, 0, 2) or 0
    local bits = pow.difficulty(cfg.pow_bits, issued, cfg.pow_busy_per_s, cfg.pow_extra_max)
    if bits == 0 then
        return ngx_say('{"bits":0}')
    end
    local expires_s = floor(now_f) + cfg.pow_ttl_s
    local token = pow.issue(cfg.pow_key, user_id, sale_id, expires_s, bits, hmac.random_hex(8))
    metrics.inc("pow", "issued")
    ngx_say('{"challenge":"', token, '","bits":', bits, ',"expires_s":', expires_s, '}')
end

-- Checks POST /api/sales/{sale_id}/captcha?pow=<challenge>&pow_solution=<x>; returns only
-- when the request may go on to the backend, which draws the captcha.
function _M.captcha(sale_id)
    local cfg, user_id, _, now_f = admit("captcha", sale_id, EARLY_MS)
    if not cfg then
        return
    end
    if cfg.pow_bits > 0 then
        local args = ngx.req.get_uri_args(8)
        local ok = pow.check(cfg.pow_key, cfg.spent, args.pow, args.pow_solution, user_id,
            sale_id, floor(now_f), cfg.pow_ttl_s)
        if not ok then
            return refuse("bad_pow", "captcha")
        end
    end
    metrics.inc("captcha", "passed")
end

-- Answers POST /api/sales/{sale_id}/path itself: after a correct captcha, and only once the
-- sale has started, it hands out the signed purchase path. Fields `captcha_token` and
-- `answer` come as a form body or as query arguments.
function _M.path(sale_id)
    local cfg, user_id, stock_left, now_f = admit("path", sale_id, 0)
    if not cfg then
        return
    end
    if not stock_left then
        return refuse("unknown_sale", "path")
    end
    ngx.req.read_body()
    -- nil when the body is not form data or not in memory (the location keeps up to the
    -- body limit in memory): then the query arguments are all there is.
    local args = ngx.req.get_post_args(8) or {}
    local uri_args = ngx.req.get_uri_args(8)
    local now = floor(now_f)
    local ok = captcha.check(cfg.captcha_key, cfg.spent,
        args.captcha_token or uri_args.captcha_token, args.answer or uri_args.answer,
        user_id, sale_id, now, cfg.captcha_ttl_s)
    if not ok then
        return refuse("bad_captcha", "path")
    end
    local sig = link.sign(cfg.link_key, user_id, sale_id, now, cfg.link_window_s)
    metrics.inc("path", "issued")
    ngx_say('{"path":"/api/sales/', sale_id, '/buy/', sig, '"}')
end

-- Checks POST /api/sales/{sale_id}/buy/{sig}; returns only when the request may go on.
function _M.buy(sale_id, sig)
    local cfg, user_id, stock_left, now_f = admit("buy", sale_id, 0)
    if not cfg then
        return
    end
    if not link.verify(cfg.link_key, sig, user_id, sale_id, floor(now_f), cfg.link_window_s) then
        return refuse("bad_link", "buy")
    end
    local ok, err = admission.allow(cfg.limits, sale_id, stock_left, cfg.admission_multiple,
        now_f)
    if err then
        ngx.log(ngx.WARN, err)
    end
    if not ok then
        return refuse("over_admission", "buy")
    end
    metrics.inc("buy", "passed")
end

return _M
