-- header_rewrite: read one request header, set two, remove one.
function envoy_on_request(handle)
  local headers = handle:headers()
  headers:replace("x-bench-copy", headers:get("x-bench-in") or "none")
  headers:replace("x-bench-filter", "lua")
  headers:remove("x-bench-drop")
end
