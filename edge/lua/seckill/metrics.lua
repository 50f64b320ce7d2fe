-- Edge metrics: counters in a lua_shared_dict (shared by workers, kept across reloads), and
-- their Prometheus text rendering for GET /metrics (loopback only, see nginx.conf).
-- The hot path counts in a table of this worker (no dict lock per request); a timer adds the
-- worker's counts to the dict every `flush_interval` seconds, so /metrics lags by at most that.
-- Keys are "<route>|<outcome>"; routes and outcomes are a small fixed set chosen by the
-- callers, never raw request data, so the label set stays bounded.
local concat = table.concat
local match = string.match

local _M = { _VERSION = "0.1" }

local pending = {}

-- name, help, the dict method that measures it
local DICT_GAUGES = {
    { "seckill_edge_dict_free_bytes", "Free bytes of each shared dict", "free_space" },
    { "seckill_edge_dict_capacity_bytes", "Size of each shared dict", "capacity" },
}

function _M.inc(route, outcome)
    local k = route .. "|" .. outcome
    pending[k] = (pending[k] or 0) + 1
end

-- Histograms: name -> bucket bounds (seconds). Their counts are kept like the counters, under
-- "h|<name>|<le>", "h|<name>|+Inf" and "h|<name>|sum" (the sum in milliseconds).
local HISTOGRAMS = {
    seckill_edge_queue_eta_error_seconds = { 0.5, 1, 2, 5, 10, 30, 60, 120, 300 },
}
local HISTOGRAM_HELP = {
    seckill_edge_queue_eta_error_seconds = "Waiting room: |predicted - actual| admission time "
        .. "of a ticket (its first ETA on this edge vs its first poll that saw it admitted)",
}

function _M.observe(name, value)
    local bounds = HISTOGRAMS[name]
    for _, le in ipairs(bounds) do
        if value <= le then
            local k = "h|" .. name .. "|" .. le
            pending[k] = (pending[k] or 0) + 1
        end
    end
    local k = "h|" .. name .. "|+Inf"
    pending[k] = (pending[k] or 0) + 1
    k = "h|" .. name .. "|sum"
    pending[k] = (pending[k] or 0) + math.floor(value * 1000 + 0.5)
end

-- Adds this worker's counts to the dict and starts afresh.
function _M.flush(dict)
    local counts = pending
    pending = {}
    for k, n in pairs(counts) do
        local ok, err = dict:incr(k, n, 0)
        if not ok then
            ngx.log(ngx.WARN, "metrics: failed to add ", k, ": ", err)
        end
    end
end

-- Starts this worker's flush timer (init_worker_by_lua).
function _M.start(dict_name, flush_interval)
    local dict = ngx.shared[dict_name]
    if not dict then
        error("metrics: shared dict not found: " .. tostring(dict_name), 2)
    end
    local ok, err = ngx.timer.every(flush_interval or 1, function(premature)
        if not premature then
            _M.flush(dict)
        end
    end)
    if not ok then
        ngx.log(ngx.ERR, "metrics: failed to start the flush timer: ", err)
    end
end

-- dict: the counters; watched: names of the shared dicts whose usage to report.
function _M.render(dict, watched, shared)
    local out = {
        "# HELP seckill_edge_requests_total Requests decided by the edge, by route and outcome",
        "# TYPE seckill_edge_requests_total counter",
    }
    local keys = dict:get_keys(0)
    table.sort(keys)
    for _, k in ipairs(keys) do
        local route, outcome = match(k, "^([%w_]+)|([%w_]+)$")
        if route then
            out[#out + 1] = 'seckill_edge_requests_total{route="' .. route .. '",outcome="'
                .. outcome .. '"} ' .. (dict:get(k) or 0)
        end
    end
    for name, bounds in pairs(HISTOGRAMS) do
        out[#out + 1] = "# HELP " .. name .. " " .. HISTOGRAM_HELP[name]
        out[#out + 1] = "# TYPE " .. name .. " histogram"
        for _, le in ipairs(bounds) do
            out[#out + 1] = name .. '_bucket{le="' .. le .. '"} ' .. (dict:get("h|" .. name .. "|" .. le) or 0)
        end
        local count = dict:get("h|" .. name .. "|+Inf") or 0
        out[#out + 1] = name .. '_bucket{le="+Inf"} ' .. count
        out[#out + 1] = name .. "_sum " .. (dict:get("h|" .. name .. "|sum") or 0) / 1000
        out[#out + 1] = name .. "_count " .. count
    end
    for _, gauge in ipairs(DICT_GAUGES) do
        out[#out + 1] = "# HELP " .. gauge[1] .. " " .. gauge[2]
        out[#out + 1] = "# TYPE " .. gauge[1] .. " gauge"
        for _, name in ipairs(watched) do
            local d = shared[name]
            if d then
                out[#out + 1] = gauge[1] .. '{dict="' .. name .. '"} ' .. d[gauge[3]](d)
            end
        end
    end
    return concat(out, "\n") .. "\n"
end

return _M
