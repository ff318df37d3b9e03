-- wrk -t1 -c16 -d10s -s tools/wrk/batch.lua http://127.0.0.1:8080  (WRITE_KEY_BASIC in the environment)
-- POST /v1/batch with 100 Segment messages (track, page, identify), unique messageIds.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic " .. (os.getenv("WRITE_KEY_BASIC") or "")
local counter = 0
local thread_id = math.random(1, 1000000000)
request = function()
  local items = {}
  for i = 1, 100 do
    counter = counter + 1
    local user = (counter * 7919) % 100000
    local kind = counter % 10
    if kind < 5 then
      items[i] = string.format('{"type":"page","userId":"user-%d","name":"Pricing","properties":{"path":"/pricing","url":"https://example.com/pricing"},"messageId":"%d-%d"}', user, thread_id, counter)
    elseif kind < 9 then
      items[i] = string.format('{"type":"track","userId":"user-%d","event":"Email Link Clicked","properties":{"campaign":"nurture","n":%d},"messageId":"%d-%d"}', user, counter, thread_id, counter)
    else
      items[i] = string.format('{"type":"identify","userId":"user-%d","traits":{"plan":"trial","company_size":120,"title":"VP Marketing"},"messageId":"%d-%d"}', user, thread_id, counter)
    end
  end
  return wrk.format(nil, "/v1/batch", nil, '{"batch":[' .. table.concat(items, ",") .. ']}')
end
