package.path = "edge/lua/?.lua;edge/spec/?.lua;" .. package.path

local dict = require("fake_dict").new

local admission = require "seckill.admission"

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
