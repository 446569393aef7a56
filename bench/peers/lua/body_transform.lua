-- body_transform: upper-case every response body chunk, in place of the chunk.
function envoy_on_response(handle)
  for chunk in handle:bodyChunks() do
    chunk:setBytes(chunk:getBytes(0, chunk:length()):upper())
  end
end
