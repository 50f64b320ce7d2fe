-- Edge configuration, read once in init_by_lua (the master) and inherited by every worker.
-- Secrets are the files the backend uses (var/secrets): the edge verifies what it signs.
-- A missing or short secret stops nginx from starting (fail closed).
local _M = { _VERSION = "0.1" }

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

-- opts: secrets_dir (required), link_window_s (default 60, as the backend),
-- sales_dict (default "seckill_sales"), limits_dict ("seckill_limits"), ip_per_s (buy
-- requests per second per client address, 50), user_per_s (per user, 5),
-- admission_multiple (buy requests a second let through per unit left, 3),
-- captcha_dict (spent captcha tokens, "seckill_captcha").
function _M.init(opts)
    if type(opts) ~= "table" or type(opts.secrets_dir) ~= "string" then
        error("seckill.config.init: opts.secrets_dir is required", 2)
    end
    cfg = {
        session_key = read_secret(opts.secrets_dir .. "/session.key"),
        link_key = read_secret(opts.secrets_dir .. "/link.key"),
        captcha_key = read_secret(opts.secrets_dir .. "/captcha.key"),
        captcha_dict = opts.captcha_dict or "seckill_captcha",
        link_window_s = tonumber(opts.link_window_s) or 60,
        sales_dict = opts.sales_dict or "seckill_sales",
        limits_dict = opts.limits_dict or "seckill_limits",
        ip_per_s = tonumber(opts.ip_per_s) or 50,
        user_per_s = tonumber(opts.user_per_s) or 5,
        admission_multiple = tonumber(opts.admission_multiple) or 3,
    }
end

function _M.get()
    if not cfg then
        error("seckill.config: init() was not called in init_by_lua", 2)
    end
    return cfg
end

return _M
