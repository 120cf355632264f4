-- baseline: the cheapest round trip (parse/bind/execute of a constant query)
SELECT 1;
