-- The trigger's INSERT ... SELECT (ST_Dump(ST_Subdivide(...))).geom is
-- estimated at a million rows (two set-returning functions of 1000 rows
-- each), far above jit_above_cost, so PostgreSQL JIT-compiled it for every
-- thing written: about 15 ms of compilation per feature, whatever its size.
-- A grid of 2,000 squares took 45 s to import, 59 ms without JIT. Splitting
-- a geometry gains nothing from JIT, so it is off for this function.
ALTER FUNCTION thing_part_sync() SET jit = off;
