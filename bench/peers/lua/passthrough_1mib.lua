-- passthrough_1mib: a response data hook that does not read the data.
function envoy_on_response(handle)
  for chunk in handle:bodyChunks() do
  end
end
