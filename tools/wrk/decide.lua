-- wrk -t1 -c64 -d10s -s tools/wrk/decide.lua http://127.0.0.1:8080  (WRITE_KEY_BASIC in the environment)
-- POST /v1/decide for the demo tenant's placements, visitors spread over 100,000 user ids.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic " .. (os.getenv("WRITE_KEY_BASIC") or "")
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"userId": "user-%d", "placements": ["home-hero", "pricing-cta", "sidebar"], "context": {"url": "https://example.com/pricing?utm_source=google"}}',
    (counter * 7919) % 100000)
  return wrk.format(nil, "/v1/decide", nil, body)
end
