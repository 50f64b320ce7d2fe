package.path = "edge/lua/?.lua;edge/spec/?.lua;" .. package.path

local dict = require("fake_dict").new

local sale_state = require "seckill.sale_state"

describe("sale_state.parse", function()
    it("reads the backend's lines and skips bad ones", function()
        local list = sale_state.parse("7 1000 2000 0 5\ngarbage\n8 1000 2000 1 0\n9 1 2 7 1\n")
        assert.same({ { id = "7", value = "1000 2000 0 5" }, { id = "8", value = "1000 2000 1 0" } },
            list)
    end)
end)

describe("sale_state.check", function()
    local d = dict({ ["7"] = "1000 2000 0 5", ["8"] = "1000 2000 1 0" })
    it("refuses before the start", function()
        assert.equal("not_started", (sale_state.check(d, "7", 999)))
    end)
    it("refuses at and after the end", function()
        assert.equal("ended", (sale_state.check(d, "7", 2000)))
    end)
    it("refuses a sold-out sale", function()
        assert.equal("sold_out", (sale_state.check(d, "8", 1500)))
    end)
    it("lets a live sale through, with its stock left", function()
        local reason, left = sale_state.check(d, "7", 1500)
        assert.is_nil(reason)
        assert.equal(5, left)
    end)
    it("fails open for a sale it does not know (the backend decides)", function()
        assert.is_nil(sale_state.check(d, "99", 1500))
    end)
end)
