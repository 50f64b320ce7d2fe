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
