-- Tokens per client this calendar month (UTC), the biggest users first.
--   psql "postgres://USER@HOST/DB" -f etc/reports/postgres/tokens-this-month.sql
SELECT client, SUM(requests) AS requests, SUM(errors) AS errors,
       SUM(prompt_tokens) AS prompt_tokens, SUM(cached_tokens) AS cached_tokens,
       SUM(candidates_tokens) AS candidates_tokens, SUM(thoughts_tokens) AS thoughts_tokens,
       SUM(tool_use_tokens) AS tool_use_tokens, SUM(total_tokens) AS total_tokens
FROM usage_by_client_day
WHERE day >= date_trunc('month', now() AT TIME ZONE 'UTC')::date
GROUP BY client
ORDER BY total_tokens DESC, client;
