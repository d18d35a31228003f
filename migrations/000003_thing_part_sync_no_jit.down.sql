ALTER FUNCTION thing_part_sync() RESET jit;
