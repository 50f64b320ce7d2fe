package.path = "edge/lua/?.lua;" .. package.path

local limit = require "seckill.limit"

-- A stand-in for ngx.shared.DICT's incr(key, by, init, ttl).
local function dict()
    local d = { data = {} }
    function d:incr(k, by, init)
        self.data[k] = (self.data[k] or init) + by
        return self.data[k]
    end
    return d
end

describe("limit.allow", function()
    it("lets `limit` requests through per window, then refuses", function()
        local d = dict()
        for _ = 1, 3 do assert.is_true(limit.allow(d, "u:1", 3, 1, 100.2)) end
        assert.is_false(limit.allow(d, "u:1", 3, 1, 100.7))
    end)
    it("starts afresh in the next window", function()
        local d = dict()
        for _ = 1, 4 do limit.allow(d, "u:1", 3, 1, 100.2) end
        assert.is_true(limit.allow(d, "u:1", 3, 1, 101.0))
    end)
    it("counts keys apart", function()
        local d = dict()
        for _ = 1, 4 do limit.allow(d, "u:1", 3, 1, 100) end
        assert.is_true(limit.allow(d, "u:2", 3, 1, 100))
    end)
    it("fails open when the dict cannot count", function()
        local d = { incr = function() return nil, "no memory" end }
        local ok, err = limit.allow(d, "u:1", 3, 1, 100)
        assert.is_true(ok)
        assert.truthy(err:find("no memory", 1, true))
    end)
end)
