-- A stand-in for ngx.shared.DICT in pure-Lua specs: the methods the modules use, with the
-- same return conventions (incr with init, add failing with "exists").
local _M = {}

function _M.new(entries)
    local d = { data = entries or {}, ttls = {} }
    function d:get(k) return self.data[k] end
    function d:set(k, v) self.data[k] = v return true end
    function d:incr(k, by, init)
        if self.data[k] == nil and init == nil then return nil, "not found" end
        self.data[k] = (self.data[k] or init) + by
        return self.data[k]
    end
    function d:add(k, v, ttl)
        if self.data[k] ~= nil then return false, "exists" end
        self.data[k] = v
        self.ttls[k] = ttl
        return true
    end
    function d:delete(k) self.data[k] = nil self.ttls[k] = nil end
    function d:flush_all() self.data = {} self.ttls = {} end
    function d:safe_set(k, v, ttl)
        if self.data[k] == nil then
            local n = 0
            for _ in pairs(self.data) do n = n + 1 end
            if n >= self.capacity_entries then return false, "no memory" end
        end
        self.data[k] = v
        self.ttls[k] = ttl
        return true
    end
    d.capacity_entries = math.huge
    function d:safe_add(k, v, ttl)
        if self.data[k] ~= nil then return false, "exists" end
        local n = 0
        for _ in pairs(self.data) do n = n + 1 end
        if n >= self.capacity_entries then return false, "no memory" end
        return self:add(k, v, ttl)
    end
    function d:get_keys()
        local keys = {}
        for k in pairs(self.data) do keys[#keys + 1] = k end
        return keys
    end
    function d.free_space() return 100 end
    function d.capacity() return 1000 end
    return d
end

return _M
