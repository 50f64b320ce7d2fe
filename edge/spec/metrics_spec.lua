package.path = "edge/lua/?.lua;edge/spec/?.lua;" .. package.path

local dict = require("fake_dict").new

local metrics = require "seckill.metrics"

describe("metrics", function()
    it("renders counters by route and outcome, and dict usage", function()
        local d = dict()
        metrics.inc("buy", "passed")
        metrics.inc("buy", "passed")
        metrics.inc("buy", "bad_link")
        metrics.flush(d)
        metrics.inc("buy", "passed")
        metrics.flush(d)
        local text = metrics.render(d, { "seckill_sales" }, { seckill_sales = d })
        assert.truthy(text:find('seckill_edge_requests_total{route="buy",outcome="passed"} 3', 1, true))
        assert.truthy(text:find('seckill_edge_requests_total{route="buy",outcome="bad_link"} 1', 1, true))
        assert.truthy(text:find('seckill_edge_dict_free_bytes{dict="seckill_sales"} 100', 1, true))
    end)
end)
