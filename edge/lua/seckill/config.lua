-- Edge configuration, read once in init_by_lua (the master) and inherited by every worker.
-- Secrets are the files the backend uses (var/secrets): the edge verifies what it signs.
-- Shared dicts are resolved here once, not looked up per request.
-- A missing or short secret, or a missing dict, stops nginx from starting (fail closed).
local hmac = require "seckill.hmac"
local queue = require "seckill.queue"

local _M = { _VERSION = "0.2" }

local cfg

local function read_secret(path)
    local f, err = io.open(path, "r")
    if not f then
        error("seckill.config: cannot read " .. path .. ": " .. tostring(err), 3)
    end
    local s = f:read("*a"):gsub("%s+$", "")
    f:close()
    if #s < 16 then
        error("seckill.config: " .. path .. " must hold at least 16 bytes", 3)
    end
    return s
end

local function dict(name)
    local d = ngx.shared[name]
    if not d then
        error("seckill.config: shared dict not found: " .. tostring(name), 3)
    end
    return d
end

-- opts: secrets_dir (required); sales_dict ("seckill_sales"),
-- limits_dict ("seckill_limits"), captcha_dict ("seckill_captcha": spent captcha and
-- proof-of-work nonces); ip_per_s (requests a second per client address, 50), user_per_s
-- (per user, 5); admission_multiple (buys a second let through per unit left, 3);
-- pow_bits (proof-of-work difficulty in front of the captcha, 0 = off), pow_ttl_s (how long
-- a challenge may be solved, 120), pow_busy_per_s (challenges a second per sale before the
-- difficulty rises, 500), pow_extra_max (how many bits it may rise, 8).
function _M.init(opts)
    if type(opts) ~= "table" or type(opts.secrets_dir) ~= "string" then
        error("seckill.config.init: opts.secrets_dir is required", 2)
    end
    local captcha_key = read_secret(opts.secrets_dir .. "/captcha.key")
    local link_key = read_secret(opts.secrets_dir .. "/link.key")
    cfg = {
        session_key = read_secret(opts.secrets_dir .. "/session.key"),
        link_key = link_key,
        -- Derived like the backend's (queue.rs): waiting-room tickets.
        queue_key = queue.ticket_key(link_key),
        queue_reach = tonumber(opts.queue_reach) or 3,
        -- Each ticket's first ETA, to measure its error (optional: no dict, no measure).
        queue_eta = opts.queue_dict and dict(opts.queue_dict) or nil,
        captcha_key = captcha_key,
        -- Derived, so no further secret file: proof-of-work tokens never verify as captchas.
        pow_key = hmac.sign(captcha_key, "seckill proof-of-work key v1"),
        -- The constants shared with the backend come from it with the sale states
        -- (sale_state.shared); these are only what the edge uses before its first pull.
        defaults = { link_window_s = 60, captcha_ttl_s = 120, early_ms = 60000,
                     queue_opens_ms = 15 * 60 * 1000 },
        sales = dict(opts.sales_dict or "seckill_sales"),
        limits = dict(opts.limits_dict or "seckill_limits"),
        spent = dict(opts.captcha_dict or "seckill_captcha"),
        ip_per_s = tonumber(opts.ip_per_s) or 50,
        user_per_s = tonumber(opts.user_per_s) or 5,
        -- The routes the backend answers from MariaDB (order reads, payments) have budgets
        -- of their own, so polling an order never eats the buy's; logins are per address.
        read_ip_per_s = tonumber(opts.read_ip_per_s) or 50,
        read_user_per_s = tonumber(opts.read_user_per_s) or 8,
        login_ip_per_s = tonumber(opts.login_ip_per_s) or 10,
        admission_multiple = tonumber(opts.admission_multiple) or 3,
        pow_bits = tonumber(opts.pow_bits) or 0,
        pow_ttl_s = tonumber(opts.pow_ttl_s) or 120,
        pow_busy_per_s = tonumber(opts.pow_busy_per_s) or 500,
        pow_extra_max = tonumber(opts.pow_extra_max) or 8,
    }
    if cfg.pow_bits < 0 or cfg.pow_bits + cfg.pow_extra_max > 32 then
        error("seckill.config: pow_bits + pow_extra_max must be within 0..32", 2)
    end
end

function _M.get()
    if not cfg then
        error("seckill.config: init() was not called in init_by_lua", 2)
    end
    return cfg
end

return _M
