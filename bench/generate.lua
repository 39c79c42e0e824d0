-- wrk script: POST a realistic generateContent request with the gateway token in x-goog-api-key.
-- The same script drives every target (nginx ignores the token and sets its own key upstream).
--
-- Counts the requests each thread sent (request() is called just before each write), so the report
-- can tell requests answered (wrk's summary) from requests sent (answered + in flight when wrk
-- stopped): the gateway's row count must lie between the two, and equal "sent" if nothing is lost.
-- done() prints one machine-readable line, WRKJSON {...}, after wrk's own report.

local token = os.getenv("BENCH_TOKEN") or ""

wrk.method = "POST"
wrk.body = '{"contents":[{"role":"user","parts":[{"text":"Explain in three short paragraphs how a reverse proxy keeps latency low."}]}],' ..
           '"generationConfig":{"temperature":0.7,"maxOutputTokens":256}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-goog-api-key"] = token
wrk.headers["User-Agent"] = "google-genai-sdk/1.0 gl-python/3.11 (bench)"

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local prepared

function init(args)
   sent = 0
   prepared = wrk.format()
end

function request()
   sent = sent + 1
   return prepared
end

function done(summary, latency, requests)
   local total_sent = 0
   for _, thread in ipairs(threads) do
      total_sent = total_sent + thread:get("sent")
   end
   local e = summary.errors
   io.write(string.format(
      'WRKJSON {"requests":%d,"sent":%d,"duration_us":%d,"bytes":%d,' ..
      '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, total_sent, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
      latency.max, latency.mean))
end
