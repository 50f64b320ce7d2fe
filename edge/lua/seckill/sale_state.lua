-- Each sale's window and sold-out flag, in a lua_shared_dict kept fresh from the backend,
-- so the edge answers 425 (not started) and 410 (ended, sold out) without any backend trip.
--
-- One worker at a time pulls GET /internal/sales every `interval` seconds (a dict lock picks
-- it); entries expire after `ttl` seconds. The dict lives in nginx.conf, so it survives
-- `nginx -s reload`. Failure policy: open. A sale the edge does not know (just created, or
-- the backend unreachable for longer than `ttl`) is passed to the backend, which checks the
-- window and the stock itself; being stale can only let a request through, never sell.
local ngx = ngx
local tonumber = tonumber
local gmatch = string.gmatch
local match = string.match

local _M = { _VERSION = "0.1" }

-- A line is "<id> <starts_ms> <ends_ms> <sold_out 0|1> <stock_left>", then for the waiting
-- room "<mode 0 none|1 fifo|2 random> <grace_s> <admit_ttl_s> <admit_multiple> <cursor>
-- <expired_below> <joined> <drawn|-1> <rate_milli|-1> <flags: 1 paused, 2 reopened>"
-- (queue.rs).
local SALE = "^(%-?%d+) (%-?%d+) ([01]) (%d+)"
local QUEUE = " ([012]) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%-?%d+) (%-?%d+) (%d+)$"

-- Parses the backend's lines; bad lines are skipped.
function _M.parse(text)
    local out = {}
    for line in gmatch(text, "[^\n]+") do
        local id, value = match(line, "^(%d+) (.*)$")
        if id and (match(value, SALE .. "$") or match(value, SALE .. QUEUE)) then
            out[#out + 1] = { id = id, value = value }
        end
    end
    return out
end

-- Why the edge refuses ("not_started", "ended", "sold_out"), or nil and the units left
-- (nil too when the sale is unknown) when it lets the request through.
-- sale id -> the state last parsed in this worker, keyed by the raw dict value: the pattern
-- match runs once per change of a sale's state, not once per request.
local parsed = {}

local function parse(sale_id, v)
    local p = parsed[sale_id]
    if p and p.raw == v then
        return p
    end
    local starts, ends, sold, left, mode, grace, ttl, multiple, cursor, expired, joined, drawn,
        rate, flags = match(v, SALE .. QUEUE)
    if not starts then
        starts, ends, sold, left = match(v, SALE .. "$")
        if not starts then
            return nil
        end
    end
    p = { raw = v, starts = tonumber(starts), ends = tonumber(ends), sold = sold == "1",
          left = tonumber(left), mode = tonumber(mode or 0) }
    if p.mode > 0 then
        flags = tonumber(flags)
        p.grace_ms = tonumber(grace) * 1000
        p.ttl_s = tonumber(ttl)
        p.multiple = tonumber(multiple)
        p.cursor = tonumber(cursor)
        p.expired_below = tonumber(expired)
        p.joined = tonumber(joined)
        p.drawn = tonumber(drawn)
        p.rate = tonumber(rate) / 1000
        p.paused = flags % 2 == 1
        p.reopened = flags >= 2
    end
    parsed[sale_id] = p
    return p
end

-- The parsed state of a sale (a table shared by this worker's requests: do not change it),
-- or nil when the edge does not know the sale.
function _M.get(dict, sale_id)
    local v = dict:get(sale_id)
    return v and parse(sale_id, v)
end

-- `early_ms`: how long before the start the route is already open (captchas, 0 for buys).
-- The third result is the parsed state (nil when unknown).
function _M.check(dict, sale_id, now_ms, early_ms)
    local p = _M.get(dict, sale_id)
    if not p then
        return nil
    end
    if now_ms + (early_ms or 0) < p.starts then
        return "not_started"
    end
    if now_ms >= p.ends then
        return "ended"
    end
    if p.sold then
        return "sold_out"
    end
    return nil, p.left, p
end

-- Fetches the backend's list over a plain HTTP/1.0 cosocket request.
local function fetch(host, port, timeout_ms)
    local sock = ngx.socket.tcp()
    sock:settimeout(timeout_ms)
    local ok, err = sock:connect(host, port)
    if not ok then
        return nil, "failed to connect to the backend: " .. err
    end
    ok, err = sock:send("GET /internal/sales HTTP/1.0\r\nHost: backend\r\n\r\n")
    if not ok then
        sock:close()
        return nil, "failed to send: " .. err
    end
    local data, rerr, partial = sock:receive("*a")
    sock:close()
    data = data or partial
    if not data then
        return nil, "failed to read: " .. tostring(rerr)
    end
    local status, body = match(data, "^HTTP/1%.%d (%d+).-\r\n\r\n(.*)$")
    if status ~= "200" then
        return nil, "backend answered " .. tostring(status)
    end
    return body
end

local function refresh(premature, opts)
    if premature then
        return
    end
    local dict = ngx.shared[opts.dict]
    -- One worker per interval does the pull.
    if not dict:add("__refresh_lock", true, opts.interval * 0.9) then
        return
    end
    -- Several backends (a fleet): the one that answered last first, then the others.
    local body, err
    for i = 0, #opts.backends - 1 do
        local k = (opts.last_ok + i - 1) % #opts.backends + 1
        local b = opts.backends[k]
        body, err = fetch(b.host, b.port, opts.timeout_ms)
        if body then
            opts.last_ok = k
            break
        end
        ngx.log(ngx.WARN, "sale_state: ", b.host, ":", b.port, ": ", err)
    end
    if not body then
        return
    end
    for _, s in ipairs(_M.parse(body)) do
        dict:set(s.id, s.value, opts.ttl)
    end
end

-- Starts the refresh timer in this worker (call from init_worker_by_lua).
-- opts: dict, backend ("host:port", or several separated by commas); interval (s, default
-- 0.5), ttl (s, default 10), timeout_ms (1000).
function _M.start(opts)
    if not ngx.shared[opts.dict] then
        error("sale_state: shared dict not found: " .. tostring(opts.dict), 2)
    end
    opts.backends, opts.last_ok = {}, 1
    for item in gmatch(opts.backend or "", "[^,%s]+") do
        local host, port = match(item, "^([^:]+):(%d+)$")
        if not host then
            error("sale_state: backend must be host:port[,host:port...], got "
                .. tostring(opts.backend), 2)
        end
        opts.backends[#opts.backends + 1] = { host = host, port = tonumber(port) }
    end
    if #opts.backends == 0 then
        error("sale_state: no backend given", 2)
    end
    opts.interval = opts.interval or 0.5
    opts.ttl = opts.ttl or 10
    opts.timeout_ms = opts.timeout_ms or 1000
    local ok, err = ngx.timer.every(opts.interval, refresh, opts)
    if not ok then
        ngx.log(ngx.ERR, "sale_state: failed to start the refresh timer: ", err)
    end
    ngx.timer.at(0, refresh, opts)
end

return _M
