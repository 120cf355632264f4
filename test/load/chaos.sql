-- One pgbench transaction of the chaos load: a random operation on one of
-- 1,000 hot members, through chaos.op(), which records the outcome and
-- swallows only the documented refusals.
\set m random(1, 1000)
\set op random(1, 130)
\set n random(1, 50)
SELECT chaos.op(:m, :op, :n, :client_id);
