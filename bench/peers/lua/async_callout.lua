-- async_callout: one GET to the "callout" cluster per request; its status goes upstream.
local callout = { [":method"] = "GET", [":path"] = "/callout", [":authority"] = "callout" }

function envoy_on_request(handle)
  local headers = handle:httpCall("callout", callout, nil, 5000)
  handle:headers():replace("x-callout-status", headers[":status"] or "none")
end
