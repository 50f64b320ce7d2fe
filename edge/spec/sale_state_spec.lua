package.path = "edge/lua/?.lua;" .. package.path

local sale_state = require "seckill.sale_state"

-- A stand-in for ngx.shared.DICT with the one method check() uses.
local function dict(entries)
    return { get = function(_, k) return entries[k] end }
end

describe("sale_state.parse", function()
    it("reads the backend's lines and skips bad ones", function()
        local list = sale_state.parse("7 1000 2000 0\ngarbage\n8 1000 2000 1\n9 1 2 7\n")
        assert.same({ { id = "7", value = "1000 2000 0" }, { id = "8", value = "1000 2000 1" } }, list)
    end)
end)

describe("sale_state.check", function()
    local d = dict({ ["7"] = "1000 2000 0", ["8"] = "1000 2000 1" })
    it("refuses before the start with 425", function()
        assert.equal(425, (sale_state.check(d, "7", 999)))
    end)
    it("refuses at and after the end with 410", function()
        assert.equal(410, (sale_state.check(d, "7", 2000)))
    end)
    it("refuses a sold-out sale with 410", function()
        local status, body = sale_state.check(d, "8", 1500)
        assert.equal(410, status)
        assert.truthy(body:find("sold_out", 1, true))
    end)
    it("lets a live sale through", function()
        assert.is_nil(sale_state.check(d, "7", 1500))
    end)
    it("fails open for a sale it does not know (the backend decides)", function()
        assert.is_nil(sale_state.check(d, "99", 1500))
    end)
end)
