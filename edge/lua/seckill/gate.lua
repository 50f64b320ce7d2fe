-- The edge's gate for every guarded shopper route: each check it can decide alone, cheapest
-- first, before a request costs the backend anything. Routes (nginx.conf, one location each):
--   POST /api/sales/{id}/pow          answered here: a proof-of-work challenge (pow.lua)
--   POST /api/sales/{id}/captcha      checked here (the solved challenge), drawn by the backend
--   POST /api/sales/{id}/path         answered here: the signed link, after a correct captcha
--   POST /api/sales/{id}/buy/{sig}    checked here (the link, admission), reserved by the backend
--   POST /api/sales/{id}/queue        checked here, a ticket from the backend (joining the line)
--   GET  /api/sales/{id}/queue?ticket= answered here: the ticket's place, ETA or admission
-- In a sale with a waiting room, pow, captcha and path also need an admitted ticket
-- (`?ticket=`): its signature, sale and shopper, and its place inside the serving cursor.
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
local queue = require "seckill.queue"

local ngx = ngx
local ngx_now = ngx.now
local ngx_say = ngx.say
local ngx_exit = ngx.exit
local floor = math.floor
local match = string.match

local _M = { _VERSION = "0.2" }

-- The constants shared with the backend (its link window and captcha lifetime, how early
-- challenges are handed out and lines open): the backend's, as the last pull brought them.
local function shared(cfg, now_f)
    return sale_state.shared(cfg.sales, now_f, cfg.defaults)
end

-- reason -> status, body. The one place for the edge's refusal bodies; they keep the
-- backend's error shape ({"error": code, "message": what was wrong}).
local REFUSALS = {
    method = { 405, '{"error":"method_not_allowed","message":"use POST on this path"}' },
    method_queue = { 405, '{"error":"method_not_allowed","message":"use GET, HEAD or POST on this path"}' },
    not_started = { 425, '{"error":"not_started","message":"the sale has not started yet"}' },
    ended = { 410, '{"error":"ended","message":"the sale has ended"}' },
    sold_out = { 410, '{"error":"sold_out","message":"sold out"}' },
    paused = { 409, '{"error":"paused",'
        .. '"message":"the sale is paused by the operator; it may resume soon"}' },
    rate_limited_ip = { 429, '{"error":"rate_limited","message":"too many requests, slow down"}' },
    rate_limited_user = { 429, '{"error":"rate_limited","message":"too many requests, slow down"}' },
    no_session = { 401, '{"error":"unauthorized","message":"session: missing (log in first)"}' },
    bad_session = { 403, '{"error":"bad_session","message":"session: invalid or expired"}' },
    bad_link = { 403, '{"error":"bad_link",'
        .. '"message":"purchase link: invalid, expired, or issued to someone else"}' },
    unknown_sale = { 404, '{"error":"not_found","message":"no such sale (or not yet known)"}' },
    bad_captcha = { 403, '{"error":"bad_captcha","reason":"foreign",'
        .. '"message":"captcha: not one issued to you for this sale; take a new one"}' },
    bad_captcha_wrong = { 403, '{"error":"bad_captcha","reason":"wrong",'
        .. '"message":"captcha: that was not the code shown; try a new one"}' },
    bad_captcha_expired = { 403, '{"error":"bad_captcha","reason":"expired",'
        .. '"message":"captcha: it expired (each lasts two minutes); take a new one"}' },
    bad_captcha_used = { 403, '{"error":"bad_captcha","reason":"used",'
        .. '"message":"captcha: already used (each is good for one try); take a new one"}' },
    bad_pow = { 403, '{"error":"bad_pow","message":"proof of work: missing, not solved, '
        .. 'expired, already used, or issued to someone else"}' },
    over_admission = { 429, '{"error":"try_later",'
        .. '"message":"too many buyers right now for the units left, try again"}' },
    bad_ticket = { 403, '{"error":"bad_ticket","message":"queue ticket: missing, invalid, or '
        .. 'issued for another sale or shopper (join the queue first)"}' },
    not_admitted = { 403, '{"error":"not_admitted","message":"queue: this ticket is not '
        .. 'admitted now (its turn has not come, or has passed): poll it"}' },
    no_queue = { 409, '{"error":"no_queue","message":"this sale has no waiting room"}' },
    not_lapsed = { 409, '{"error":"not_lapsed","message":"queue: this ticket\'s turn has not '
        .. 'passed; keep your place"}' },
    queue_unknown = { 503, '{"error":"unavailable",'
        .. '"message":"the queue of this sale is not known here yet, try again"}' },
}

-- captcha.check's reasons -> the refusal that names it.
local CAPTCHA_REFUSALS = { wrong = "bad_captcha_wrong", expired = "bad_captcha_expired",
                           used = "bad_captcha_used" }

-- A 405's Allow header, by refusal.
local ALLOW = { method = "POST", method_queue = "GET, HEAD, POST" }

-- The location sets Content-Type (default_type) and Cache-Control (add_header) in C.
local function refuse(reason, route)
    metrics.inc(route, reason)
    local r = REFUSALS[reason]
    ngx.status = r[1]
    if ALLOW[reason] then
        ngx.header["Allow"] = ALLOW[reason]
    end
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

-- The shopper behind a request, within the limits: the per-address limit (key prefix, per
-- second), the session, the per-user limit; or refuses it and returns nothing. (Plain
-- arguments, no tables: this runs on every buy.)
local function shopper(cfg, route, now_f, ip_prefix, ip_per_s, user_prefix, user_per_s)
    if over_limit(cfg.limits, ip_prefix .. ngx.var.remote_addr, ip_per_s, now_f) then
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
    if over_limit(cfg.limits, user_prefix .. user_id, user_per_s, now_f) then
        return refuse("rate_limited_user", route)
    end
    return user_id
end

-- What every guarded route checks first, cheapest first: the method, the sale's state (open
-- before its start by the shared constant named `early`, if any), the per-address limit, the
-- session, the per-user limit. Returns the config, the user id, the units left (nil if the
-- edge does not know the sale) and the time; or refuses the request and returns nothing.
local function admit(route, sale_id, early, sold_out_ok)
    if ngx.req.get_method() ~= "POST" then
        return refuse(route == "queue_join" and "method_queue" or "method", route)
    end
    local cfg = config.get()
    local now_f = ngx_now()
    local early_ms = early and shared(cfg, now_f)[early] or 0
    local reason, stock_left, state = sale_state.check(cfg.sales, sale_id, now_f * 1000, early_ms)
    if reason and not (sold_out_ok and reason == "sold_out") then
        return refuse(reason, route)
    end
    -- ngx.var.remote_addr is the real client: the realip module trusts X-Forwarded-For only
    -- from the proxies nginx.conf lists (set_real_ip_from).
    local user_id = shopper(cfg, route, now_f, "ip:", cfg.ip_per_s, "user:", cfg.user_per_s)
    if not user_id then
        return
    end
    return cfg, user_id, stock_left, now_f, state
end

-- This worker's status options of each queued sale: its shuffle's round keys are derived once.
local status_opts = {}

local function opts_of(cfg, sale_id)
    local opts = status_opts[sale_id]
    if not opts then
        local keys = queue.shuffle_keys(cfg.link_key, sale_id)
        opts = { reach = cfg.queue_reach,
                 shuffle = function(size, n) return queue.permute(keys, size, n) end }
        status_opts[sale_id] = opts
    end
    return opts
end

local function status_of(cfg, p, sale_id, number, now_ms)
    return queue.status(p, number, now_ms, opts_of(cfg, sale_id))
end

-- Tickets this worker has verified: ticket -> { sale, user, number, eta_noted }. A shopper's
-- page polls its ticket every few seconds: its HMAC is checked once per worker, not per poll.
-- Bounded: the table starts afresh past MAX_VERIFIED entries.
local MAX_VERIFIED = 50000
local verified, verified_n = {}, 0

local function ticket_of(cfg, ticket, sale_id)
    local t = ticket and verified[ticket]
    if t then
        if t.sale ~= sale_id then
            return nil
        end
        return t
    end
    local user, number = queue.verify(cfg.queue_key, ticket, sale_id)
    if not user then
        return nil
    end
    if verified_n >= MAX_VERIFIED then
        verified, verified_n = {}, 0
    end
    t = { sale = sale_id, user = user, number = tonumber(number) }
    verified[ticket] = t
    verified_n = verified_n + 1
    return t
end

-- In a sale with a waiting room, the request must carry (`?ticket=`) this shopper's ticket for
-- this sale, admitted now; refuses it otherwise and returns nothing.
local function check_turn(cfg, state, route, sale_id, user_id, now_f)
    if not state or state.mode == 0 then
        return true
    end
    local t = ticket_of(cfg, ngx.var.arg_ticket, sale_id)
    if not t or t.user ~= user_id then
        return refuse("bad_ticket", route)
    end
    local s = status_of(cfg, state, sale_id, t.number, floor(now_f * 1000))
    if s.state ~= "admitted" then
        return refuse("not_admitted", route)
    end
    return true
end

-- The limits of a route the backend answers from MariaDB (order reads, payments, logins):
-- per real client address, and per session when the route needs one (checked here, so a
-- request without a valid session never reaches the backend). Failure policy: a limiter
-- fault lets the request pass (see limit.lua); a bad session is refused (closed). The
-- per-address limit is read_ip_per_s for reads (`read` true, or a session needed), else
-- login_ip_per_s.
function _M.limited(route, session_needed, read)
    local cfg = config.get()
    local now_f = ngx_now()
    local per_ip = (session_needed or read) and cfg.read_ip_per_s or cfg.login_ip_per_s
    if session_needed then
        if not shopper(cfg, route, now_f, route .. ":ip:", per_ip, route .. ":user:",
                cfg.read_user_per_s) then
            return
        end
    elseif over_limit(cfg.limits, route .. ":ip:" .. ngx.var.remote_addr, per_ip, now_f) then
        return refuse("rate_limited_ip", route)
    end
    metrics.inc(route, "passed")
end

-- Answers POST /api/sales/{sale_id}/pow itself: a proof-of-work challenge for this shopper
-- and sale, or {"bits":0} when the operator turned proof of work off.
function _M.pow(sale_id)
    local cfg, user_id, stock_left, now_f, state = admit("pow", sale_id, "early_ms")
    if not cfg or not check_turn(cfg, state, "pow", sale_id, user_id, now_f) then
        return
    end
    -- No work handed out for a sale this edge does not know (the page asks at the start, by
    -- which time every edge has learned it).
    if not stock_left then
        return refuse("unknown_sale", "pow")
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
    local cfg, user_id, _, now_f, state = admit("captcha", sale_id, "early_ms")
    if not cfg or not check_turn(cfg, state, "captcha", sale_id, user_id, now_f) then
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
    local cfg, user_id, stock_left, now_f, state = admit("path", sale_id)
    if not cfg or not check_turn(cfg, state, "path", sale_id, user_id, now_f) then
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
    local ok, why = captcha.check(cfg.captcha_key, cfg.spent,
        args.captcha_token or uri_args.captcha_token, args.answer or uri_args.answer,
        user_id, sale_id, now, shared(cfg, now_f).captcha_ttl_s)
    if not ok then
        -- Each refusal says why: a person then knows to type more carefully, or just to take
        -- a new picture.
        local reason = CAPTCHA_REFUSALS[why] or "bad_captcha"
        return refuse(reason, "path")
    end
    local sig = link.sign(cfg.link_key, user_id, sale_id, now, shared(cfg, now_f).link_window_s)
    metrics.inc("path", "issued")
    if state and state.mode > 0 then
        -- The buy names the ticket too, so the line learns that this admission was used.
        return ngx_say('{"path":"/api/sales/', sale_id, '/buy/', sig, '?ticket=',
            ngx.var.arg_ticket, '"}')
    end
    ngx_say('{"path":"/api/sales/', sale_id, '/buy/', sig, '"}')
end

-- Checks POST /api/sales/{sale_id}/buy/{sig}; returns only when the request may go on.
function _M.buy(sale_id, sig)
    local cfg, user_id, stock_left, now_f, state = admit("buy", sale_id)
    if not cfg then
        return
    end
    local window_s = shared(cfg, now_f).link_window_s
    if not link.verify(cfg.link_key, sig, user_id, sale_id, floor(now_f), window_s) then
        return refuse("bad_link", "buy")
    end
    if state and state.mode > 0 then
        -- The waiting room already meters who holds a link (admit_multiple x units left): an
        -- admitted shopper is not turned away by the per-second cap. The backend records the
        -- buyer's place (the admission is used) from this header, never from the client's.
        ngx.req.clear_header("X-Queue-Position")
        local t = ticket_of(cfg, match(ngx.var.args or "", "^ticket=([%d.a-f]+)$"), sale_id)
        if t and t.user == user_id then
            local pos = queue.position(state, t.number, opts_of(cfg, sale_id).shuffle)
            if pos then
                ngx.req.set_header("X-Queue-Position", pos)
            end
        end
        metrics.inc("buy", "passed")
        return
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

-- GET /api/sales/{sale_id}/queue?ticket=: the ticket's status, answered here from the sale's
-- state alone (one HMAC, one dict read). The URL names the ticket, so a cache may keep each
-- answer a second (nginx.conf sets Cache-Control) and the crowd's polling stays cheap.
local function poll(sale_id)
    local cfg = config.get()
    local now_ms = floor(ngx_now() * 1000)
    -- Exactly "?ticket=<ticket>": one spelling per ticket, so a cache keyed by the URL cannot
    -- be bypassed with extra arguments.
    local t = ticket_of(cfg, match(ngx.var.args or "", "^ticket=([%d.a-f]+)$"), sale_id)
    if not t then
        return refuse("bad_ticket", "queue_poll")
    end
    local p = sale_state.get(cfg.sales, sale_id)
    if not p then
        return refuse("queue_unknown", "queue_poll")
    end
    if p.mode == 0 then
        return refuse("no_queue", "queue_poll")
    end
    local s = status_of(cfg, p, sale_id, t.number, now_ms)
    metrics.inc("queue_poll", s.state)
    -- ETA error: the first ETA this edge gave the ticket vs the first poll that saw it
    -- admitted (the dict is shared by this edge's workers; each worker notes once per ticket).
    local eta = cfg.queue_eta
    if eta and (s.eta_s and not t.eta_noted or s.state == "admitted" and not t.admit_noted) then
        local k = sale_id .. ":" .. t.number
        if s.eta_s then
            t.eta_noted = true
            eta:add("p:" .. k, now_ms + s.eta_s * 1000, 3600)
        else
            t.admit_noted = true
            local predicted = eta:get("p:" .. k)
            if predicted and eta:add("a:" .. k, true, 3600) then
                metrics.observe("seckill_edge_queue_eta_error_seconds",
                    math.abs(now_ms - predicted) / 1000)
            end
        end
    end
    ngx_say(queue.render(s, now_ms))
    return ngx_exit(200)
end

-- POST /api/sales/{sale_id}/queue joins the line (the backend numbers the ticket); a sold-out
-- sale may still be joined: that is its waitlist. GET polls a ticket.
function _M.queue(sale_id)
    local method = ngx.req.get_method()
    if method == "GET" or method == "HEAD" then
        return poll(sale_id)
    end
    local cfg, user_id, _, now_f, state = admit("queue_join", sale_id, "queue_opens_ms", true)
    if not cfg then
        return
    end
    if state and state.mode == 0 then
        return refuse("no_queue", "queue_join")
    end
    -- Joining again at the back, after a turn that came and passed unused: only with this
    -- shopper's own ticket in that state (the backend believes this header from us only).
    ngx.req.clear_header("X-Queue-Rejoin")
    local again = match(ngx.var.args or "", "^again=([%d.a-f]+)$")
    if again then
        local t = ticket_of(cfg, again, sale_id)
        if not t or t.user ~= user_id or not state then
            return refuse("bad_ticket", "queue_join")
        end
        if status_of(cfg, state, sale_id, t.number, floor(now_f * 1000)).state ~= "expired" then
            return refuse("not_lapsed", "queue_join")
        end
        ngx.req.set_header("X-Queue-Rejoin", "1")
    end
    metrics.inc("queue_join", "passed")
end

return _M
