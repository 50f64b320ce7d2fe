package.path = "edge/lua/?.lua;edge/spec/?.lua;" .. package.path

local dict = require("fake_dict").new

_G.ngx = _G.ngx or {}
ngx.log = ngx.log or function() end
ngx.ERR = ngx.ERR or 4

local sale_state = require "seckill.sale_state"

describe("sale_state.parse", function()
    it("reads the header and the backend's lines, and skips bad ones", function()
        local head, list = sale_state.parse(
            "#state 12 1700-0 ab12 1\n7 1000 2000 0 5\ngarbage\n8 1000 2000 1 0\n9 1 2 7 1\n")
        assert.same({ kind = "state", rev = 12, log = "1700-0", epoch = "ab12", more = true }, head)
        assert.same({ { id = "7", value = "1000 2000 0 5" }, { id = "8", value = "1000 2000 1 0" } },
            list)
    end)
    it("reads a page of the full list and a resync", function()
        local head = sale_state.parse("#full 3 0-0 ab12 250\n")
        assert.same({ kind = "full", rev = 3, log = "0-0", epoch = "ab12", next = 250 }, head)
        assert.equal("resync", (sale_state.parse("#resync\n")).kind)
        assert.is_nil(sale_state.parse("7 1000 2000 0 5\n"))
    end)
end)

describe("sale_state.check", function()
    local d = dict({ ["7"] = "1000 2000 0 5", ["8"] = "1000 2000 1 0", ["9"] = "1000 2000 2 4" })
    it("refuses before the start", function()
        assert.equal("not_started", (sale_state.check(d, "7", 999)))
    end)
    it("refuses at and after the end", function()
        assert.equal("ended", (sale_state.check(d, "7", 2000)))
    end)
    it("refuses a sold-out sale", function()
        assert.equal("sold_out", (sale_state.check(d, "8", 1500)))
    end)
    it("refuses a paused sale", function()
        assert.equal("paused", (sale_state.check(d, "9", 1500)))
    end)
    it("lets a live sale through, with its stock left", function()
        local reason, left = sale_state.check(d, "7", 1500)
        assert.is_nil(reason)
        assert.equal(5, left)
    end)
    it("fails open for a sale it does not know (the backend decides)", function()
        assert.is_nil(sale_state.check(d, "99", 1500))
    end)
    it("sees a change of state at once (its parse cache is keyed by the value)", function()
        local d2 = dict({ ["5"] = "1000 2000 0 3" })
        assert.is_nil((sale_state.check(d2, "5", 1500)))
        d2:set("5", "1000 2000 1 0")
        assert.equal("sold_out", (sale_state.check(d2, "5", 1500)))
        d2:set("5", "1000 2000 0 1")
        local reason, left = sale_state.check(d2, "5", 1500)
        assert.is_nil(reason)
        assert.equal(1, left)
    end)
    it("fails open on a malformed value", function()
        assert.is_nil(sale_state.check(dict({ ["6"] = "garbage" }), "6", 1500))
    end)
end)

describe("sale_state pulls: changes, not the world", function()
    local now = 1000 -- seconds; the sales below end at 5,000 s
    local function answer(d, text)
        local head, list = sale_state.parse(text)
        return sale_state.take(d, head, list, now)
    end

    it("reads the full list page by page, then goes on from its first page's marks", function()
        local d = dict({ __full_next = 0 })
        assert.is_true(answer(d, "#full 40 1-0 e1 2\n1 0 5000000 0 9\n2 0 5000000 0 9\n"))
        assert.equal(2, d:get("__full_next"))
        assert.is_nil(d:get("__rev"), "not synced before the last page")
        assert.is_true(answer(d, "#full 44 2-0 e1 0\n3 0 5000000 1 0\n"))
        assert.is_nil(d:get("__full_next"))
        assert.same({ 40, "1-0", "e1" }, { d:get("__rev"), d:get("__log"), d:get("__epoch") })
        assert.equal("0 5000000 1 0", d:get("3"))
        assert.equal(4000 + 3600, d.ttls["3"], "kept until its end plus an hour")
    end)

    it("takes what changed, and asks again when the backend says there is more", function()
        local d = dict({ __rev = 40, __log = "1-0", __epoch = "e1", ["1"] = "0 5000000 0 9" })
        assert.is_true(answer(d, "#state 41 3-0 e1 1\n1 0 5000000 1 0\n"))
        assert.is_false(answer(d, "#state 41 4-0 e1 0\n"))
        assert.equal("0 5000000 1 0", d:get("1"))
        assert.same({ 41, "4-0" }, { d:get("__rev"), d:get("__log") })
    end)

    it("starts over on #resync, and forgets another database's sales", function()
        local d = dict({ __rev = 40, __log = "1-0", __epoch = "e1", ["1"] = "0 5000000 0 9" })
        assert.is_true(answer(d, "#resync\n"))
        assert.equal(0, d:get("__full_next"))
        answer(d, "#full 2 0-0 e2 0\n7 0 5000000 0 1\n")
        assert.is_nil(d:get("1"))
        assert.equal("e2", d:get("__epoch"))
        assert.equal("0 5000000 0 1", d:get("7"))
    end)

    it("drops a sale ended more than an hour ago", function()
        local d = dict({ __rev = 1, __log = "0-0", __epoch = "e1", ["5"] = "0 100 0 1" })
        local head, list = sale_state.parse("#state 2 0-0 e1 0\n5 0 1000 0 1\n")
        sale_state.take(d, head, list, 1 + 3600 + 1)
        assert.is_nil(d:get("5"))
    end)
end)

describe("the constants shared with the backend", function()
    local defaults = { link_window_s = 60, captcha_ttl_s = 120, early_ms = 60000,
                       queue_opens_ms = 900000 }
    it("are the edge's defaults before the first pull, then the backend's", function()
        local d = dict({})
        assert.same(defaults, sale_state.shared(d, 100, defaults))
        local head, list = sale_state.parse("#state 1 0-0 ab 0\n7 1000 2000 0 5\n"
            .. "#shared link_window_s=30 captcha_ttl_s=90 early_ms=45000 queue_opens_ms=600000\n")
        assert.same({ link_window_s = 30, captcha_ttl_s = 90, early_ms = 45000,
                      queue_opens_ms = 600000 }, head.shared)
        assert.equal(1, #list)
        sale_state.take(d, head, list, 100)
        -- Each worker reads them again at most once a second.
        assert.equal(60, sale_state.shared(d, 100.5, defaults).link_window_s)
        assert.same({ link_window_s = 30, captcha_ttl_s = 90, early_ms = 45000,
                      queue_opens_ms = 600000 }, sale_state.shared(d, 101, defaults))
    end)
end)
