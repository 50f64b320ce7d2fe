package.path = "edge/lua/?.lua;" .. package.path

local admission = require "seckill.admission"

local function dict()
    local d = { data = {} }
    function d:incr(k, by, init)
        self.data[k] = (self.data[k] or init) + by
        return self.data[k]
    end
    return d
end

describe("admission.allow", function()
    it("admits multiple x stock left per second, then refuses", function()
        local d = dict()
        for _ = 1, 6 do assert.is_true(admission.allow(d, "7", 2, 3, 100.5)) end
        assert.is_false(admission.allow(d, "7", 2, 3, 100.9))
        assert.is_true(admission.allow(d, "7", 2, 3, 101.1), "a new second")
    end)
    it("fails open when the stock is unknown", function()
        assert.is_true(admission.allow(dict(), "7", nil, 3, 100))
    end)
end)
