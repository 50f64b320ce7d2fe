package.path = "edge/lua/?.lua;edge/spec/?.lua;" .. package.path

local dict = require("fake_dict").new

local limit = require "seckill.limit"

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
