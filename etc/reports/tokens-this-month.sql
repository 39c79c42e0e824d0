-- Tokens per client this calendar month (UTC), the biggest users first.
--   sqlite3 gateway.db < etc/reports/tokens-this-month.sql
.headers on
.mode column
SELECT client, SUM(requests) AS requests, SUM(errors) AS errors,
       SUM(prompt_tokens) AS prompt_tokens, SUM(cached_tokens) AS cached_tokens,
       SUM(candidates_tokens) AS candidates_tokens, SUM(thoughts_tokens) AS thoughts_tokens,
       SUM(tool_use_tokens) AS tool_use_tokens, SUM(total_tokens) AS total_tokens
FROM usage_by_client_day
WHERE day >= strftime('%Y-%m-01', 'now')
GROUP BY client
ORDER BY total_tokens DESC, client;
