-- Each sale's window, flags and stock, in a lua_shared_dict kept fresh from the backend, so
-- the edge answers 425 (not started), 410 (ended, sold out) and 409 (paused) without any
-- backend trip.
--
-- The edge learns changes, not the world (the backend's side: backend/src/http/internal.rs).
-- On start (or after a gap) it reads the full list of live sales in pages
-- (GET /internal/sales?full=AFTER_ID); then, every `interval` seconds, it asks what changed
-- since what it saw (?rev=R&changes=C&epoch=E) and gets only those sales, and the waiting
-- rooms that are moving. An idle platform answers an empty list. One worker at a time pulls
-- (a dict lock); a pull that says `more` is followed at once, up to `max_requests` a run.
-- Entries carry no refresh TTL: a sale's entry lives until its end plus an hour, and the
-- next change replaces it. Nothing is missed while the backend is unreachable: the next pull
-- asks from where the last answer ended. Only a backend that says #resync (another database,
-- a trimmed or lost change log) sends the edge back to the full list.
--
-- The dict lives in nginx.conf, so it survives `nginx -s reload`. Failure policy: open. A
-- sale the edge does not know (the backend unreachable since it was created) is passed to
-- the backend, which checks the window and the stock itself; being stale can only let a
-- request through, never sell.
local ngx = ngx
local tonumber = tonumber
local tostring = tostring
local floor = math.floor
local gmatch = string.gmatch
local match = string.match
local format = string.format

local _M = { _VERSION = "0.2" }

-- A line is "<id> <starts_ms> <ends_ms> <flags: 1 sold out, 2 paused> <stock_left>", then
-- for the waiting room "<mode 0 none|1 fifo|2 random> <grace_s> <admit_ttl_s>
-- <admit_multiple> <cursor> <expired_below> <joined> <drawn|-1> <rate_milli|-1> <flags:
-- 1 paused, 2 reopened>" (queue.rs).
local SALE = "^(%-?%d+) (%-?%d+) ([0-3]) (%d+)"
local QUEUE = " ([012]) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%-?%d+) (%-?%d+) (%d+)$"
-- How long after its end a sale's entry is kept (the backend's EDGE_GRACE_MS).
local KEEP_AFTER_END_S = 3600

-- The constants the backend and the edge must agree on, as every answer's `#shared` line
-- carries them (internal.rs `shared_line`): the backend is their one source.
local SHARED = { "link_window_s", "captcha_ttl_s", "early_ms", "queue_opens_ms" }

-- Parses an answer: its header ({kind = "state"|"full"|"resync", ..., shared = {...}}) and
-- its lines (bad lines are skipped). nil when the answer has no header.
function _M.parse(text)
    local kind, a, b, c, d = match(text, "^#(%a+) ?(%S*) ?(%S*) ?(%S*) ?(%S*)")
    if not kind then
        return nil
    end
    local head = { kind = kind }
    local shared = match(text, "\n#shared ([^\n]*)")
    if shared then
        head.shared = {}
        for k, v in gmatch(shared, "([%a_]+)=(%d+)") do
            head.shared[k] = tonumber(v)
        end
    end
    if kind == "state" then
        head.rev, head.log, head.epoch, head.more = tonumber(a), b, c, d == "1"
    elseif kind == "full" then
        head.rev, head.log, head.epoch, head.next = tonumber(a), b, c, tonumber(d)
    end
    local out = {}
    for line in gmatch(text, "[^\n]+") do
        local id, value = match(line, "^(%d+) (.*)$")
        if id and (match(value, SALE .. "$") or match(value, SALE .. QUEUE)) then
            out[#out + 1] = { id = id, value = value }
        end
    end
    return head, out
end

-- sale id -> the state last parsed in this worker, keyed by the raw dict value: the pattern
-- match runs once per change of a sale's state, not once per request.
local parsed = {}

local function parse(sale_id, v)
    local p = parsed[sale_id]
    if p and p.raw == v then
        return p
    end
    local starts, ends, flags, left, mode, grace, ttl, multiple, cursor, expired, joined, drawn,
        rate, qflags = match(v, SALE .. QUEUE)
    if not starts then
        starts, ends, flags, left = match(v, SALE .. "$")
        if not starts then
            return nil
        end
    end
    flags = tonumber(flags)
    p = { raw = v, starts = tonumber(starts), ends = tonumber(ends), sold = flags % 2 == 1,
          sale_paused = flags >= 2, left = tonumber(left), mode = tonumber(mode or 0) }
    if p.mode > 0 then
        qflags = tonumber(qflags)
        p.grace_ms = tonumber(grace) * 1000
        p.ttl_s = tonumber(ttl)
        p.multiple = tonumber(multiple)
        p.cursor = tonumber(cursor)
        p.expired_below = tonumber(expired)
        p.joined = tonumber(joined)
        p.drawn = tonumber(drawn)
        p.rate = tonumber(rate) / 1000
        p.paused = qflags % 2 == 1 or p.sale_paused
        p.reopened = qflags >= 2
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

-- Why the edge refuses ("not_started", "ended", "sold_out", "paused"), or nil and the units
-- left (nil too when the sale is unknown) when it lets the request through.
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
    if p.sale_paused then
        return "paused"
    end
    return nil, p.left, p
end

-- What this edge knows of a sale, as JSON (GET /edge/sales/{id}, loopback), or nil.
function _M.describe(dict, sale_id, now_ms)
    local p = _M.get(dict, sale_id)
    if not p then
        return nil
    end
    local reason = _M.check(dict, sale_id, now_ms, 0)
    return format('{"id":%s,"starts_ms":%d,"ends_ms":%d,"sold_out":%s,"paused":%s,'
        .. '"stock_left":%d,"queue_mode":%d,"status":"%s"}', sale_id, p.starts, p.ends,
        tostring(p.sold), tostring(p.sale_paused), p.left, p.mode, reason or "open")
end

-- The shared constants as the backend last sent them ({} before the first pull), read from
-- the dict at most once a second per worker: `defaults` fills what is not known yet.
local shared, shared_at = {}, -1
function _M.shared(dict, now, defaults)
    if now - shared_at >= 1 then
        shared_at = now
        for _, k in ipairs(SHARED) do
            shared[k] = dict:get("__c_" .. k) or defaults[k]
        end
    end
    return shared
end

-- Where this edge stands in the pull (GET /edge/sales, loopback), as JSON, with the shared
-- constants it uses.
function _M.where(dict, now)
    local synced = dict:get("__synced")
    local c = {}
    for _, k in ipairs(SHARED) do
        c[#c + 1] = format('"%s":%s', k, tostring(dict:get("__c_" .. k) or "null"))
    end
    return format('{"rev":%d,"changes":"%s","epoch":"%s","synced_s_ago":%s,'
        .. '"full_sync":%s,"shared":{%s}}', dict:get("__rev") or 0, dict:get("__log") or "",
        dict:get("__epoch") or "", synced and format("%.3f", now - synced) or "null",
        tostring(dict:get("__full_next") ~= nil), table.concat(c, ","))
end

-- Fetches one answer of the backend over a plain HTTP/1.0 cosocket request.
local function fetch(host, port, path, timeout_ms)
    local sock = ngx.socket.tcp()
    sock:settimeout(timeout_ms)
    local ok, err = sock:connect(host, port)
    if not ok then
        return nil, "failed to connect to the backend: " .. err
    end
    ok, err = sock:send("GET " .. path .. " HTTP/1.0\r\nHost: backend\r\n\r\n")
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

-- One answer from the first backend that gives one (the one that answered last first).
local function ask(opts, path)
    local err
    for i = 0, #opts.backends - 1 do
        local k = (opts.last_ok + i - 1) % #opts.backends + 1
        local b = opts.backends[k]
        local body
        body, err = fetch(b.host, b.port, path, opts.timeout_ms)
        if body then
            opts.last_ok = k
            return body
        end
        ngx.log(ngx.WARN, "sale_state: ", b.host, ":", b.port, ": ", err)
    end
    return nil, err
end

-- Keeps the sales of an answer; each entry lives until its sale's end plus an hour. A full
-- dict refuses instead of evicting another sale (an evicted sale would not come back).
local function store(dict, list, now)
    for _, s in ipairs(list) do
        local ends = tonumber(match(s.value, "^%-?%d+ (%-?%d+)"))
        local ttl = floor((ends / 1000 - now) + KEEP_AFTER_END_S)
        if ttl < 1 then
            dict:delete(s.id)
        else
            local ok, err = dict:safe_set(s.id, s.value, ttl)
            if not ok then
                ngx.log(ngx.ERR, "sale_state: cannot keep sale ", s.id, ": ", err,
                    " (make lua_shared_dict seckill_sales larger)")
            end
        end
    end
end

-- The path of the next request: a page of the full list while one is read, else what
-- changed since the last answer.
local function next_path(dict)
    local after = dict:get("__full_next")
    if after then
        return "/internal/sales?full=" .. after
    end
    return format("/internal/sales?rev=%d&changes=%s&epoch=%s", dict:get("__rev") or 0,
        dict:get("__log") or "0-0", dict:get("__epoch") or "")
end

-- Takes one answer in; returns true when another request should follow at once.
local function take(dict, head, list, now)
    for _, k in ipairs(SHARED) do
        if head.shared and head.shared[k] then
            dict:set("__c_" .. k, head.shared[k])
        end
    end
    if head.kind == "resync" then
        dict:set("__full_next", 0)
        return true
    end
    if head.kind == "full" then
        if (dict:get("__full_next") or 0) == 0 then
            -- The first page: where to go on from once the list is read.
            if head.epoch ~= dict:get("__epoch") then
                dict:flush_all()
                dict:set("__full_next", 0)
            end
            dict:set("__full_rev", head.rev)
            dict:set("__full_log", head.log)
            dict:set("__full_epoch", head.epoch)
        end
        store(dict, list, now)
        if head.next and head.next > 0 then
            dict:set("__full_next", head.next)
            return true
        end
        dict:set("__rev", dict:get("__full_rev"))
        dict:set("__log", dict:get("__full_log"))
        dict:set("__epoch", dict:get("__full_epoch"))
        dict:delete("__full_next")
        dict:set("__synced", now)
        return true
    end
    store(dict, list, now)
    dict:set("__rev", head.rev)
    dict:set("__log", head.log)
    dict:set("__synced", now)
    return head.more
end

-- For the specs: one answer taken in, as a pull takes it.
_M.take = take

local function refresh(premature, opts)
    if premature then
        return
    end
    local dict = ngx.shared[opts.dict]
    -- One worker per interval, and never two pulls at once (a long one holds the lock).
    if not dict:add("__refresh_lock", true, opts.interval * 0.9) then
        return
    end
    if not dict:add("__pulling", true, opts.max_requests * opts.timeout_ms / 1000 + 1) then
        return
    end
    if not dict:get("__full_next") and not dict:get("__epoch") then
        dict:set("__full_next", 0)
    end
    for _ = 1, opts.max_requests do
        local body = ask(opts, next_path(dict))
        if not body then
            break
        end
        local head, list = _M.parse(body)
        if not head then
            ngx.log(ngx.ERR, "sale_state: an answer without a header")
            break
        end
        if not take(dict, head, list, ngx.now()) then
            break
        end
    end
    dict:delete("__pulling")
end

-- Starts the refresh timer in this worker (call from init_worker_by_lua).
-- opts: dict, backend ("host:port", or several separated by commas); interval (s, default
-- 0.5), timeout_ms (1000), max_requests (requests a run, default 20).
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
    opts.timeout_ms = opts.timeout_ms or 1000
    opts.max_requests = opts.max_requests or 20
    local ok, err = ngx.timer.every(opts.interval, refresh, opts)
    if not ok then
        ngx.log(ngx.ERR, "sale_state: failed to start the refresh timer: ", err)
    end
    ngx.timer.at(0, refresh, opts)
end

return _M
